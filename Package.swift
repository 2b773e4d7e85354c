// swift-tools-version:5.9
import PackageDescription

let package = Package(
    name: "anomap",
    products: [
        .executable(name: "anomap", targets: ["anomap"]),
        .library(
            name: "AnomapKit",
            targets: ["SafeFiles", "Imaging", "Tensors", "NeuralNet", "Models", "Metrics", "Detection", "Batch"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        // `anomap serve`: HTTP/1.1 on SwiftNIO's own pipeline (Hummingbird and swift-prometheus
        // pull in swift-metrics, whose `Metrics` module collides with our `Metrics` target).
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CJPEG", pkgConfig: "libjpeg", providers: [.apt(["libjpeg-dev"])]),
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .target(name: "CImageCodecs", dependencies: ["CPNG", "CJPEG"]),
        .target(name: "SafeFiles", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "Imaging", dependencies: ["CImageCodecs", "SafeFiles"]),
        // Stops a build copied to a CPU without the vectors its kernels were compiled for.
        .target(name: "CCPUGuard"),
        .target(name: "Tensors", dependencies: ["CBLAS", "CCPUGuard"]),
        .target(name: "NeuralNet", dependencies: ["Tensors", "SafeFiles"]),
        .target(name: "Models", dependencies: ["NeuralNet", "Tensors"]),
        .target(name: "Metrics"),
        // The detection core: settings, scoring components, fusion, calibration, training, bundles.
        .target(
            name: "Detection", dependencies: ["Imaging", "Tensors", "NeuralNet", "Models", "Metrics", "SafeFiles"]),
        // The user-facing batch side: image folders, batch inspection, outputs, evaluation, report, marks, merging.
        .target(name: "Batch", dependencies: ["Detection", "Imaging", "Tensors", "Models", "Metrics", "SafeFiles"]),
        // The HTTP service: admission, the inspection worker, hot model reload, metrics.
        .target(
            name: "Serving",
            dependencies: [
                "Batch", "Detection", "Imaging", "SafeFiles", "Tensors",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),
        .executableTarget(
            name: "anomap",
            dependencies: [
                "Detection", "Batch", "Serving", "Imaging", "Models", "Tensors", "NeuralNet", "SafeFiles", "Metrics",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .target(name: "SyntheticData", dependencies: ["Imaging", "Tensors"], path: "Fixtures/SyntheticData"),
        // A blocking loopback HTTP/1.1 client for the service's tests and load benchmark.
        .target(name: "LoopbackHTTP", path: "Fixtures/LoopbackHTTP"),
        .executableTarget(name: "anomap-load", dependencies: ["LoopbackHTTP"], path: "Fixtures/LoadGenerator"),
        .executableTarget(name: "anomap-fixtures", dependencies: ["SyntheticData"], path: "Fixtures/Generator"),
        .executableTarget(
            name: "anomap-bench",
            dependencies: [
                "Detection", "Batch", "Imaging", "Metrics", "Models", "Tensors", "SafeFiles", "NeuralNet",
                "SyntheticData",
            ]),
        .testTarget(name: "MetricsTests", dependencies: ["Metrics"]),
        .testTarget(name: "SafeFilesTests", dependencies: ["SafeFiles"]),
        .testTarget(
            name: "DetectionTests",
            dependencies: [
                "Detection", "Batch", "Models", "SyntheticData", "NeuralNet", "Tensors",
                "Imaging", "SafeFiles",
            ]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging", "CImageCodecs", "Tensors"]),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "NeuralNet"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "Imaging", "Detection"]),
        .testTarget(name: "CLITests", dependencies: ["anomap", "SyntheticData", "LoopbackHTTP"]),
    ]
)

// libFuzzer targets (Fuzz/Targets), declared only for `make fuzz`, which builds them with
// -sanitize=fuzzer,address into their own build folder: they have no main of their own.
if Context.environment["ANOMAP_FUZZ"] == "1" {
    package.targets.append(.target(name: "FuzzSupport", path: "Fuzz/Targets/FuzzSupport"))
    for name in ["FuzzPNG", "FuzzJPEG", "FuzzModelBundle", "FuzzRecords"] {
        package.targets.append(
            .executableTarget(
                name: name,
                dependencies: ["FuzzSupport", "Imaging", "Detection", "Batch", "Models", "NeuralNet", "SafeFiles"],
                path: "Fuzz/Targets/\(name)"))
    }
}
