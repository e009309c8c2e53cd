/// Every key of osbuild-composer's blueprint format that Kiln reads, and every
/// one it recognises but rejects, per section. A section is a key path without
/// array indices: `""` is the document, `customizations.disk.partitions` is one
/// partition. `BlueprintReader` checks each table against these lists, and
/// `docs/blueprint.md` has a row for every key in them (a test compares both).
package enum BlueprintKeys {
    /// Section → the keys `BlueprintReader` reads there.
    package static let supported: [String: [String]] = [
        "": ["name", "description", "version", "distro", "architecture", "packages", "modules", "groups",
             "minimal", "customizations"],
        "packages": ["name", "version"],
        "modules": ["name", "version"],
        "groups": ["name"],
        "customizations": ["hostname", "kernel", "sshkey", "user", "group", "timezone", "locale", "firewall",
                           "services", "filesystem", "disk", "partitioning_mode", "directories", "files",
                           "repositories", "cacerts", "sshd", "firstboot"],
        "customizations.kernel": ["name", "append"],
        "customizations.sshkey": ["user", "key"],
        "customizations.user": ["name", "description", "password", "key", "home", "shell", "groups", "uid", "gid",
                                "expiredate", "force_password_reset"],
        "customizations.group": ["name", "gid"],
        "customizations.timezone": ["timezone", "ntpservers"],
        "customizations.locale": ["languages", "keyboard"],
        "customizations.firewall": ["ports", "services", "zones"],
        "customizations.firewall.services": ["enabled", "disabled"],
        "customizations.firewall.zones": ["name", "sources"],
        "customizations.services": ["enabled", "disabled", "masked"],
        "customizations.filesystem": ["mountpoint", "minsize", "size"],
        "customizations.disk": ["type", "minsize", "partitions"],
        "customizations.disk.partitions": ["type", "minsize", "part_type", "mountpoint", "label", "fs_type", "name",
                                           "logical_volumes"],
        "customizations.disk.partitions.logical_volumes": ["name", "minsize", "mountpoint", "label", "fs_type"],
        "customizations.directories": ["path", "user", "group", "mode", "ensure_parents"],
        "customizations.files": ["path", "user", "group", "mode", "data"],
        "customizations.repositories": ["id", "name", "baseurls", "suites", "components", "gpgkeys", "gpgcheck",
                                        "repo_gpgcheck", "sslverify", "enabled", "priority", "install_from"],
        "customizations.cacerts": ["pem_certs"],
        "customizations.sshd": ["config", "password_authentication", "kbd_interactive_authentication",
                                "challenge_response_authentication", "client_alive_interval", "permit_root_login"],
        "customizations.firstboot": ["scripts"],
        "customizations.firstboot.scripts": ["type", "name", "contents", "ignore_failure"],
    ]

    /// Section → osbuild-composer keys that cannot apply to a Debian image
    /// built by Kiln, with why and what to do instead.
    package static let rejected: [String: [String: String]] = [
        "": [
            "containers": "embedding container images means pulling from a registry during the build, outside the manifest's pinned sources; install podman under [[packages]] and pull images from a [[customizations.firstboot.scripts]] entry",
            "enabled_modules": "module streams are a DNF modularity feature and Debian has none; list the packages you need under [[packages]]",
        ],
        "customizations": [
            "fips": "FIPS mode needs a FIPS-validated crypto stack, which Debian does not ship; remove fips",
            "openscap": "the SCAP Security Guide profiles osbuild applies target RHEL and Fedora, and Debian has no build-time remediation Kiln could run; remove [customizations.openscap]",
            "rhsm": "Red Hat Subscription Manager does not exist on Debian; remove [customizations.rhsm]",
            "subscription": "Red Hat subscription registration does not exist on Debian; remove it",
            "aap_registration": "Ansible Automation Platform registration is a Red Hat hosted-service key; call the callback URL from a [[customizations.firstboot.scripts]] entry",
            "fdo": "FIDO Device Onboard is for RHEL for Edge simplified-installer images, which Kiln does not build; remove [customizations.fdo]",
            "ignition": "Ignition configures CoreOS and RHEL for Edge images; Debian images use cloud-init (the cloud image types) or [[customizations.firstboot.scripts]]",
            "rpm": "a Debian image has no RPM database to import keys into; give repository signing keys in [[customizations.repositories]] gpgkeys",
            "installation_device": "it names the target disk of an edge-simplified-installer; Kiln builds disk images, not installers; remove it",
            "installer": "these are Anaconda installer (ISO) options and Debian has no Anaconda; remove [customizations.installer]",
            "containers-storage": "it places embedded containers, and Kiln does not embed containers; remove [customizations.containers-storage]",
            "wsl": "WSL images are not an image type Kiln builds; remove [customizations.wsl]",
            "ca": "write the certificates as [customizations.cacerts] pem_certs",
            "payload_repositories": "this is the hosted image-builder spelling; in a blueprint write [[customizations.repositories]]",
            "custom_repositories": "this is the hosted image-builder spelling; in a blueprint write [[customizations.repositories]]",
            "packages": "this is the hosted image-builder spelling; in a blueprint write [[packages]] at the top level",
            "users": "this is the hosted image-builder spelling; in a blueprint write [[customizations.user]]",
            "groups": "this is the hosted image-builder spelling; in a blueprint write [[customizations.group]]",
        ],
        "customizations.disk.partitions": [
            "subvolumes": "btrfs volumes are not implemented: the Debian kernel can mount btrfs, but Kiln creates only ext4, xfs, vfat and swap and no subvolumes; use type = \"plain\" or type = \"lvm\"",
            "part_label": "Kiln names GPT partitions itself (the boot loader finds them by name); remove part_label",
            "part_uuid": "Kiln derives partition UUIDs from the manifest so that a rebuild gives the same image; remove part_uuid",
        ],
        "customizations.files": [
            "ref": "reading a file from the build host would make the image depend on something outside the manifest; put the contents in data (a TOML multi-line string takes any text)",
            "uri": "fetching a file from the build host or the network would make the image depend on something outside the manifest; put the contents in data (a TOML multi-line string takes any text)",
        ],
        "customizations.repositories": [
            "metalink": "metalinks are a DNF feature that apt does not have; list the mirror's URL in baseurls",
            "mirrorlist": "mirror lists are a DNF feature; list one or more mirror URLs in baseurls",
            "module_hotfixes": "module streams are a DNF modularity feature and Debian has none; remove module_hotfixes",
            "filename": "Kiln writes the repository to /etc/apt/sources.list.d/ID.sources; choose the id to name the file",
        ],
        "customizations.firstboot.scripts": [
            "command": "Red Hat Satellite registration does not apply to Debian; run your own command with type = \"custom\" and contents",
            "job_template_url": "Ansible Automation Platform callbacks are a Red Hat integration; call the URL from a type = \"custom\" script",
            "host_config_key": "Ansible Automation Platform callbacks are a Red Hat integration; call the URL from a type = \"custom\" script",
            "cacerts": "add certificates under [customizations.cacerts]; they are in the trust store before the first boot",
            "after": "scripts run one after another in the order they are listed; reorder them instead",
            "before": "scripts run one after another in the order they are listed; reorder them instead",
        ],
    ]

    /// Sections that are arrays of tables (`[[packages]]`, `[[customizations.user]]`, …).
    package static let arraySections: Set<String> = [
        "packages", "modules", "groups", "containers", "customizations.user", "customizations.group",
        "customizations.sshkey", "customizations.filesystem", "customizations.firewall.zones",
        "customizations.disk.partitions", "customizations.disk.partitions.logical_volumes",
        "customizations.directories", "customizations.files", "customizations.repositories",
        "customizations.firstboot.scripts",
    ]

    /// Every key path Kiln reads or rejects, in the form `docs/blueprint.md` uses
    /// (`customizations.disk.partitions.fs_type`).
    package static var allKeyPaths: Set<String> {
        var all = Set<String>()
        for (section, keys) in supported { for k in keys { all.insert(join(section, k)) } }
        for (section, keys) in rejected { for k in keys.keys { all.insert(join(section, k)) } }
        return all
    }

    /// `customizations.user[1].groups[0]` → `customizations.user.groups`.
    package static func section(of path: String) -> String {
        var out = ""
        var depth = 0
        for c in path {
            if c == "[" { depth += 1 } else if c == "]" { depth -= 1 } else if depth == 0 { out.append(c) }
        }
        return out
    }

    static func join(_ section: String, _ key: String) -> String { section.isEmpty ? key : "\(section).\(key)" }
}
