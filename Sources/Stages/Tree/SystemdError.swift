/// Why a systemd unit could not be configured.
package enum SystemdError: Error, Sendable, CustomStringConvertible {
    /// No unit file of that name in the tree's unit directories.
    case unknownUnit(name: String, option: String)

    package var description: String {
        switch self {
        case .unknownUnit(let name, let option):
            "org.osbuild.systemd: \(option): unit \"\(name)\" does not exist in the image (looked in /etc/systemd/system, /usr/lib/systemd/system, /lib/systemd/system); check the name or install the package that ships it"
        }
    }
}
