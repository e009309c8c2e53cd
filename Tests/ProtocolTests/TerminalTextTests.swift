import Manifest
import Testing

/// Issue 15, finding 14: an agent's log line with escape sequences reached
/// the operator's terminal through `kiln logs`, and the client wrote an
/// artifact under whatever name the scheduler gave.
@Suite struct TerminalTextTests {
    @Test("escape sequences, controls, bidi overrides and separators are shown, not obeyed")
    func hostileLogLinesAreShownNotObeyed() {
        let title = "\u{1B}]0;owned\u{07}"             // retitle the window
        let clear = "\u{1B}[2J\u{1B}[H"                 // clear the screen
        let answerBack = "\u{1B}[21t"                    // ask the terminal to type back
        let c1 = "\u{9B}31m"                              // CSI as one C1 character
        let bidi = "rm -rf \u{202E}txt.exe"              // right-to-left override
        for hostile in [title, clear, answerBack, c1, bidi, "a\rb", "a\u{2028}b", "a\nb", "nul\u{0}"] {
            let shown = TerminalText.safe("log: " + hostile)
            #expect(!shown.unicodeScalars.contains { $0.properties.generalCategory == .control || $0.properties.generalCategory == .format },
                    "\(shown.debugDescription)")
            #expect(!shown.contains("\u{2028}"))
        }
        #expect(TerminalText.safe("\u{1B}[2J") == "\\u{1B}[2J")
        #expect(TerminalText.safe("dpkg: unpacking\tgrüße ✓") == "dpkg: unpacking\tgrüße ✓", "tabs and printable text stay")
    }

    @Test("an artifact name is one plain, printable file name")
    func artifactNamesFromTheSchedulerAreChecked() {
        for good in ["disk.qcow2", "image.raw.xz", "container.tar", "disk-1.vmdk"] {
            #expect(TerminalText.isPlainFileName(good), "\(good)")
        }
        for bad in ["", ".", "..", "../../etc/cron.d/x", "/etc/passwd", "a/b", "-rf", "disk\u{1B}[2J.qcow2", "a\nb",
                    String(repeating: "a", count: 256)] {
            #expect(!TerminalText.isPlainFileName(bad), "\(bad.debugDescription)")
        }
    }
}
