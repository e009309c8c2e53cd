// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "kiln",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "kiln", targets: ["kiln"]),
        .executable(name: "kiln-bench", targets: ["kiln-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // Without its default traits: no swift-configuration (Kiln reads its own TOML).
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-openapi-runtime", from: "1.13.4", traits: []),
        .package(url: "https://github.com/hummingbird-project/swift-openapi-hummingbird", from: "2.1.0"),
    ],
    targets: [
        .systemLibrary(name: "CZeroMQ", pkgConfig: "libzmq", providers: [.apt(["libzmq3-dev"])]),
        .systemLibrary(name: "CArchive", pkgConfig: "libarchive", providers: [.apt(["libarchive-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        // Threads of Kiln's own: blocking work, download lanes, eventfd wake-ups.
        .systemLibrary(name: "CEventFD"),
        .target(name: "Threads", dependencies: ["CEventFD"]),
        .target(
            name: "Manifest",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto")
            ]),
        // Every stage's options: the one place its option keys are spelled, shared by the stages and the generator.
        .target(name: "StageOptions", dependencies: ["Manifest"]),
        .target(
            name: "Stages",
            dependencies: [
                "Manifest", "StageOptions", "CArchive", "CZstd", "Threads",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]),
        .target(
            name: "Images",
            dependencies: [
                "Manifest", "StageOptions",
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]),
        .target(
            name: "Protocol",
            dependencies: [
                "CZeroMQ", "Manifest", "Threads",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // The daemons' HTTP port (dashboard, /metrics, /api/*) and their Prometheus recorder.
        .target(
            name: "HTTPServing",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),
        .target(
            name: "Scheduler",
            dependencies: [
                "Protocol", "Stages", "Threads", "HTTPServing",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),
        .target(
            name: "Agent",
            dependencies: [
                "Protocol", "Stages", "HTTPServing",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),
        // The HTTP API (composer's Cloud API v2): openapi.yaml and the code ops/gen-openapi generates from it.
        .target(
            name: "ComposerAPI",
            dependencies: [
                "Protocol", "Manifest", "Images", "Scheduler", "HTTPServing",
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "OpenAPIHummingbird", package: "swift-openapi-hummingbird"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["openapi.yaml", "openapi-generator-config.yaml"]),
        // The commands: arguments, output, config files and daemon wiring.
        .target(
            name: "KilnCLI",
            dependencies: [
                "Manifest", "Stages", "Images", "Protocol", "Scheduler", "Agent", "HTTPServing", "ComposerAPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ]),
        // `kiln`: only the entry point over KilnCLI.
        .executableTarget(name: "kiln", dependencies: ["KilnCLI"]),
        // `kiln-bench`: the benchmarks' simulators (ops/bench/dispatch, ops/bench/stream).
        .executableTarget(
            name: "kiln-bench",
            dependencies: [
                "KilnCLI", "Protocol", "Scheduler", "Agent", "Stages",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .testTarget(name: "ManifestTests", dependencies: ["Manifest", "Stages"], resources: [.copy("Fixtures")]),
        // Fixtures shared by test targets (trees made and compared with Python).
        .target(name: "KilnTestSupport", path: "Tests/KilnTestSupport"),
        .testTarget(name: "StagesTests", dependencies: ["Stages", "Manifest", "KilnTestSupport"]),
        .testTarget(name: "ImagesTests", dependencies: ["Images", "Manifest", "Stages", "KilnTestSupport"], exclude: ["Fixtures"]),
        .testTarget(
            name: "SystemTests", dependencies: ["Scheduler", "Images", "Stages", "Manifest", "KilnTestSupport"],
            exclude: ["Fixtures"]),
        .testTarget(
            name: "ProtocolTests",
            dependencies: [
                "Protocol", "HTTPServing", "CZeroMQ", "KilnTestSupport", .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .testTarget(name: "ComposerAPITests", dependencies: ["ComposerAPI", .product(name: "Crypto", package: "swift-crypto")]),
        // The scheduler in-process: no sockets, no processes, no sleeps.
        .testTarget(
            name: "SchedulerTests",
            dependencies: [
                "Scheduler", "Protocol", "Stages", "Manifest", .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .testTarget(
            name: "FarmTests",
            dependencies: [
                "Scheduler", "Agent", "Protocol", "Stages", "Manifest", "Images", "KilnTestSupport",
            ], exclude: ["Fixtures"]),
    ]
)
