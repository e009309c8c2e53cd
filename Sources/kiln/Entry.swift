import KilnCLI

/// Everything `kiln` does lives in KilnCLI; this target is only its entry point.
@main
enum Entry {
    static func main() async {
        await Kiln.main()
    }
}
