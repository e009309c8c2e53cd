import Manifest

/// `[[customizations.repositories]]`: extra apt repositories. osbuild's DNF
/// keys map to apt where apt has the same idea; `suites` and `components`
/// are Kiln's additions, because an apt source needs them.
extension BlueprintReader {
    func repositories(_ v: JSONValue?, _ path: String) throws(BlueprintError) -> [Blueprint.Repository] {
        var out: [Blueprint.Repository] = []
        var seen: [String: String] = [:]
        for (p, o) in try tables(v, path) {
            let id = try required(o, "id", p, fix: "give the repository an id, e.g. id = \"example\" (it names /etc/apt/sources.list.d/ID.sources)")
            if let reason = BlueprintRules.repositoryIDProblem(id) { throw origin.error("\(p).id", .invalid(reason: reason)) }
            try claim(id, p, key: "id", in: &seen)
            let name = try optionalString(o["name"], "\(p).name")
            if let name, name.contains(where: \.isNewline) {
                throw origin.error("\(p).name", .invalid(reason: "must be one line (it becomes the X-Repolib-Name of the .sources file)"))
            }
            guard let urlsValue = o["baseurls"] else {
                throw origin.error("\(p).baseurls", .missing(fix: "give the archive's URL, e.g. baseurls = [\"https://deb.example.org/debian\"]"))
            }
            let urls = try checkedStrings(urlsValue, "\(p).baseurls", BlueprintRules.repositoryURLProblem)
            if urls.isEmpty {
                throw origin.error("\(p).baseurls", .invalid(reason: "must not be empty; give the archive's URL, e.g. [\"https://deb.example.org/debian\"]"))
            }
            var repo = Blueprint.Repository(id: id, name: name, baseURLs: urls)
            repo.suites = try checkedStrings(o["suites"], "\(p).suites", BlueprintRules.suiteProblem)
            let flat = repo.suites.contains { $0.hasSuffix("/") }
            // apt reads one source as flat or not: a mix is a "Malformed entry" at its first update.
            if flat, let suite = repo.suites.first(where: { !$0.hasSuffix("/") }),
               let path = repo.suites.first(where: { $0.hasSuffix("/") }) {
                throw origin.error("\(p).suites", .invalid(reason: "mixes the flat-repository path \"\(path)\" (ending in '/') with the suite \"\(suite)\", which apt refuses as a malformed entry; put them in two [[customizations.repositories]] entries"))
            }
            if let c = o["components"] {
                repo.components = try checkedStrings(c, "\(p).components", BlueprintRules.componentProblem)
                if flat && !repo.components.isEmpty {
                    throw origin.error("\(p).components", .invalid(reason: "a flat repository (suite ending in '/') has no components; write components = []"))
                }
                if !flat && repo.components.isEmpty {
                    throw origin.error("\(p).components", .invalid(reason: "must not be empty; give at least one component, e.g. [\"main\"]"))
                }
            } else if flat {
                repo.components = []
            }
            repo.gpgKeys = try checkedStrings(o["gpgkeys"], "\(p).gpgkeys", BlueprintRules.gpgKeyProblem)
            // apt checks one thing, the signature of the Release file: both of osbuild's checks mean it.
            let gpgcheck = try optionalBool(o["gpgcheck"], "\(p).gpgcheck")
            let repoGPGCheck = try optionalBool(o["repo_gpgcheck"], "\(p).repo_gpgcheck")
            if let gpgcheck, let repoGPGCheck, gpgcheck != repoGPGCheck {
                throw origin.error("\(p).repo_gpgcheck", .invalid(reason: "apt has a single signature check (of the Release file), so gpgcheck = \(gpgcheck) and repo_gpgcheck = \(repoGPGCheck) contradict each other; give one of them"))
            }
            repo.gpgCheck = gpgcheck ?? repoGPGCheck ?? true
            if repo.gpgCheck && repo.gpgKeys.isEmpty {
                let key = o["gpgcheck"] != nil ? "gpgcheck" : o["repo_gpgcheck"] != nil ? "repo_gpgcheck" : "gpgkeys"
                let fix = "give the repository's signing key in gpgkeys (the output of `gpg --armor --export KEYID`), or set gpgcheck = false for a local test repository"
                if key == "gpgkeys" { throw origin.error("\(p).gpgkeys", .missing(fix: "the signature check is on by default; " + fix)) }
                throw origin.error("\(p).\(key)", .invalid(reason: "is true but no gpgkeys are given; " + fix))
            }
            if try optionalBool(o["sslverify"], "\(p).sslverify") == false {
                throw origin.error("\(p).sslverify", .invalid(reason: "Kiln never turns off TLS certificate checks; remove sslverify, or use an http:// URL (the signed Release file still protects the packages)"))
            }
            repo.enabled = try optionalBool(o["enabled"], "\(p).enabled") ?? true
            repo.priority = try optionalInt(o["priority"], "\(p).priority")
            if let priority = repo.priority, !(1...1000).contains(priority) {
                throw origin.error("\(p).priority", .invalid(reason: "\(priority) is not a usable apt pin priority; give 1 to 1000 (apt's default is 500, higher wins, 1000 allows downgrades; this is not DNF's priority, where lower wins)"))
            }
            let installFrom = try optionalBool(o["install_from"], "\(p).install_from")
            repo.installFrom = installFrom ?? repo.enabled
            if installFrom == true && !repo.enabled {
                throw origin.error("\(p).install_from", .invalid(reason: "a repository with enabled = false is not used for the build; remove install_from or enabled"))
            }
            out.append(repo)
        }
        return out
    }
}
