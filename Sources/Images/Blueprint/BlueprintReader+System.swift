import Manifest

/// `[customizations.kernel]`, `timezone`, `locale`, `firewall`, `cacerts`,
/// `sshd` and `firstboot`.
extension BlueprintReader {
    func kernel(_ v: JSONValue, _ path: String) throws(BlueprintError) -> Blueprint.Kernel? {
        let o = try table(v, path)
        var k = Blueprint.Kernel()
        if let n = o["name"], case let name = try string(n, "\(path).name"), !name.isEmpty {
            guard BlueprintRules.isPackageName(name), name.hasPrefix("linux-image-") else {
                throw origin.error("\(path).name", .invalid(reason: "\"\(name)\" is not a Debian kernel package; give one named linux-image-…, e.g. \"linux-image-cloud-amd64\" or \"linux-image-rt-amd64\""))
            }
            k.name = name
        }
        if let a = o["append"], case let append = try string(a, "\(path).append"), !append.isEmpty {
            if let reason = BlueprintRules.kernelAppendProblem(append) {
                throw origin.error("\(path).append", .invalid(reason: reason))
            }
            k.append = append
        }
        return k.name == nil && k.append == nil ? nil : k
    }

    func timezone(_ v: JSONValue, _ path: String) throws(BlueprintError) -> (String?, [String]) {
        let o = try table(v, path)
        let zone = try optionalString(o["timezone"], "\(path).timezone")
        if let zone, let reason = BlueprintRules.timezoneProblem(zone) {
            throw origin.error("\(path).timezone", .invalid(reason: reason))
        }
        let servers = try checkedStrings(o["ntpservers"], "\(path).ntpservers", BlueprintRules.hostProblem)
        return (zone, servers)
    }

    func locale(_ v: JSONValue, _ path: String) throws(BlueprintError) -> Blueprint.Locale {
        let o = try table(v, path)
        let languages = try checkedStrings(o["languages"], "\(path).languages", BlueprintRules.localeProblem)
        let keyboard = try optionalString(o["keyboard"], "\(path).keyboard")
        if let keyboard, let reason = BlueprintRules.keymapProblem(keyboard) {
            throw origin.error("\(path).keyboard", .invalid(reason: reason))
        }
        if languages.isEmpty && keyboard == nil {
            throw origin.error(path, .missing(fix: "give languages = [\"en_US.UTF-8\"] and/or keyboard = \"us\", or remove [customizations.locale]"))
        }
        return .init(languages: languages, keyboard: keyboard)
    }

    func firewall(_ v: JSONValue, _ path: String) throws(BlueprintError) -> Blueprint.Firewall {
        let o = try table(v, path)
        var f = Blueprint.Firewall()
        f.ports = try checkedStrings(o["ports"], "\(path).ports", BlueprintRules.portProblem)
        if let s = o["services"] {
            let sp = "\(path).services"
            let so = try table(s, sp)
            let rule = { (name: String) in BlueprintRules.firewallNameProblem(name, kind: "service", example: "https") }
            f.enabledServices = try checkedStrings(so["enabled"], "\(sp).enabled", rule)
            f.disabledServices = try checkedStrings(so["disabled"], "\(sp).disabled", rule)
            for (i, name) in f.disabledServices.enumerated() {
                if let j = f.enabledServices.firstIndex(of: name) {
                    throw origin.error("\(sp).disabled[\(i)]", .invalid(reason: "\"\(name)\" is also enabled at \(sp).enabled[\(j)]; a service is either enabled or disabled"))
                }
            }
        }
        var seen: [String: String] = [:]
        var sourceZone: [String: String] = [:]
        for (p, zo) in try tables(o["zones"], "\(path).zones") {
            let name = try required(zo, "name", p, fix: "give the firewalld zone the sources belong to, e.g. name = \"trusted\"")
            if let reason = BlueprintRules.firewallNameProblem(name, kind: "zone", example: "trusted") {
                throw origin.error("\(p).name", .invalid(reason: reason))
            }
            try claim(name, p, in: &seen)
            let sources = try checkedStrings(zo["sources"], "\(p).sources", BlueprintRules.addressOrNetworkProblem)
            // firewalld binds a source to one zone only ("already bound to zone").
            for (i, source) in sources.enumerated() {
                if let other = sourceZone[source], other != p {
                    throw origin.error("\(p).sources[\(i)]", .invalid(reason: "\"\(source)\" is already a source of the zone at \(other); a source belongs to one zone, so remove it from one of them"))
                }
                sourceZone[source] = p
            }
            f.zones.append(.init(name: name, sources: sources))
        }
        return f
    }

    func caCerts(_ v: JSONValue, _ path: String) throws(BlueprintError) -> [String] {
        let o = try table(v, path)
        return try checkedStrings(o["pem_certs"], "\(path).pem_certs", BlueprintRules.certificateProblem)
    }

    // MARK: sshd

    /// osbuild's `[customizations.sshd]` keys and Kiln's `[customizations.sshd.config]`
    /// keywords, as one sshd_config drop-in in keyword order.
    func sshd(_ v: JSONValue, _ path: String) throws(BlueprintError) -> Blueprint.SSHD {
        let o = try table(v, path)
        var settings: [String: (value: String, at: String)] = [:]
        let aliases = ["KbdInteractiveAuthentication": "ChallengeResponseAuthentication",
                       "ChallengeResponseAuthentication": "KbdInteractiveAuthentication"]
        func set(_ keyword: String, _ value: String, at p: String) throws(BlueprintError) {
            if let prior = settings[keyword] {
                throw origin.error(p, .invalid(reason: "sets \(keyword), which \(prior.at) already sets; give it once"))
            }
            if let alias = aliases[keyword], let prior = settings[alias] {
                throw origin.error(p, .invalid(reason: "\(keyword) and \(alias) (set by \(prior.at)) are one sshd setting under two names; give only KbdInteractiveAuthentication"))
            }
            settings[keyword] = (value, p)
        }
        let kinds = Dictionary(uniqueKeysWithValues: BlueprintRules.sshdKeywords)
        for (key, keyword) in BlueprintRules.sshdBlueprintKeys.sorted(by: { $0.key < $1.key }) {
            guard let value = o[key] else { continue }
            try set(keyword, sshdValue(value, kinds[keyword]!, "\(path).\(key)"), at: "\(path).\(key)")
        }
        if let c = o["config"] {
            let cp = "\(path).config"
            let co = try object(c, cp)
            let keys = co.keys.sorted { (origin.lines["\(cp).\($0)"] ?? .max, $0) < (origin.lines["\(cp).\($1)"] ?? .max, $1) }
            for keyword in keys {
                guard let kind = kinds[keyword] else {
                    throw origin.error("\(cp).\(keyword)", .unknownKey(allowed: BlueprintRules.sshdKeywords.map(\.0)))
                }
                try set(keyword, sshdValue(co[keyword]!, kind, "\(cp).\(keyword)"), at: "\(cp).\(keyword)")
            }
        }
        return .init(config: settings.keys.sorted().map { ($0, settings[$0]!.value) })
    }

    /// The sshd_config text of one value: booleans become yes/no.
    func sshdValue(_ v: JSONValue, _ kind: BlueprintRules.SSHDValue, _ path: String) throws(BlueprintError) -> String {
        func bad(_ reason: String) -> BlueprintError { origin.error(path, .invalid(reason: reason)) }
        func plain(_ s: String) -> Bool {
            !s.isEmpty && !s.contains(where: { $0.isNewline || $0 == "#" || $0 == "\"" || ($0.asciiValue.map { $0 < 0x20 } ?? false) })
        }
        switch kind {
        case .yesNo, .permitRootLogin:
            let words = kind == .yesNo ? ["yes", "no"] : ["yes", "no", "prohibit-password", "without-password", "forced-commands-only"]
            switch v {
            case .bool(let b): return b ? "yes" : "no"
            case .string(let s) where words.contains(s): return s
            case .string(let s): throw bad("\"\(s)\" is not a value for this setting; use one of \(words.joined(separator: ", ")) (true and false also work)")
            default: throw origin.error(path, .wrongType(expected: "a boolean or one of \(words.joined(separator: ", "))", found: typeName(v)))
            }
        case .count, .port:
            let n = try int(v, path)
            let range = kind == .port ? 1...65535 : 0...Int(Int32.max)
            guard range.contains(n) else { throw bad("\(n) is out of range; give a number from \(range.lowerBound) to \(range.upperBound)") }
            return String(n)
        case .seconds:
            if case .int = v {
                let n = try int(v, path)
                guard n >= 0 else { throw bad("\(n) is negative; give seconds, e.g. 60") }
                return String(n)
            }
            let s = try string(v, path)
            // sshd_config(5) TIME FORMATS: numbers with an optional unit s, m, h, d or w, e.g. 1m30s.
            var digits = 0
            let ok = !s.isEmpty && s.allSatisfy { c in
                if c.isASCII && c.isNumber { digits += 1; return true }
                defer { digits = 0 }
                return digits > 0 && "smhdwSMHDW".contains(c)
            }
            guard ok else { throw bad("\"\(s)\" is not an sshd time; give seconds (60) or a time such as \"2m\" or \"1m30s\"") }
            return s
        case .patterns:
            let list: [String]
            if case .array = v { list = try stringArray(v, path) } else { list = [try string(v, path)] }
            let words = list.flatMap { $0.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init) }
            guard !words.isEmpty, words.allSatisfy(plain) else {
                throw bad("give user or group patterns such as \"alice bob@192.0.2.*\" (or an array of them), without quotes, '#' or line breaks")
            }
            return words.joined(separator: " ")
        case .address:
            let s = try string(v, path)
            guard plain(s), !s.contains(where: \.isWhitespace) else {
                throw bad("\"\(s)\" is not a listen address; give one such as \"0.0.0.0\", \"192.0.2.5:2222\" or \"[::]:22\"")
            }
            return s
        case .path:
            let s = try string(v, path)
            if s == "none" { return s }
            if let reason = BlueprintRules.canonicalPathProblem(s, example: "/etc/issue.net") { throw bad(reason) }
            guard !s.contains(where: \.isWhitespace) else { throw bad("\"\(s)\" contains a space; sshd_config paths cannot") }
            return s
        }
    }

    // MARK: firstboot

    func firstBoot(_ v: JSONValue, _ path: String) throws(BlueprintError) -> [Blueprint.FirstBootScript] {
        let o = try table(v, path)
        var out: [Blueprint.FirstBootScript] = []
        var seen: [String: String] = [:]
        for (i, (p, so)) in try tables(o["scripts"], "\(path).scripts").enumerated() {
            if let t = so["type"] {
                switch try string(t, "\(p).type") {
                case "custom": break
                case let kind where kind == "satellite" || kind == "aap":
                    throw origin.error("\(p).type", .unsupported(fix: "\"\(kind)\" scripts register the host with Red Hat \(kind == "aap" ? "Ansible Automation Platform" : "Satellite"), which does not apply to Debian; use type = \"custom\" with your own contents"))
                case let kind:
                    throw origin.error("\(p).type", .invalid(reason: "\"\(kind)\" is not a script type; use type = \"custom\" (or leave type out)"))
                }
            }
            let contents = try required(so, "contents", p, fix: "give the script to run, e.g. contents = \"\"\"#!/bin/sh\\necho hello\\n\"\"\"")
            if contents.contains("\0") { throw origin.error("\(p).contents", .invalid(reason: "contains a NUL character; give text")) }
            let given = try optionalString(so["name"], "\(p).name")
            if let given, let reason = BlueprintRules.scriptNameProblem(given) {
                throw origin.error("\(p).name", .invalid(reason: reason))
            }
            let name = given ?? "script-\(i + 1)"
            if let first = seen[name] {
                throw origin.error(given == nil ? p : "\(p).name", .invalid(reason: "the script name \"\(name)\" is already used by \(first)\(given == nil ? " (a script without a name is called script-N)" : ""); give each script its own name"))
            }
            seen[name] = p
            let ignore = try optionalBool(so["ignore_failure"], "\(p).ignore_failure") ?? false
            out.append(.init(name: name, contents: contents, ignoreFailure: ignore))
        }
        return out
    }
}
