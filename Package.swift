// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Cohort",
    products: [
        .executable(name: "cohort", targets: ["cohort"]),
        .library(name: "Cohort", targets: ["Cohort"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.1.1"),
    ],
    targets: [
        // OpenMPI's handles (MPI_COMM_WORLD, MPI_FLOAT, ...) are macros: the shim exposes them as functions.
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        // Linux calls that glibc declares only under _GNU_SOURCE.
        .systemLibrary(name: "CPosix"),
        .target(
            name: "Cohort",
            dependencies: [
                "CMPI", "CBLAS", "CZlib", "CPosix",
                .product(name: "Yams", package: "Yams"),
                .product(name: "RealModule", package: "swift-numerics"),
            ],
            swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
        ),
        .executableTarget(
            name: "cohort",
            dependencies: ["Cohort", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .testTarget(name: "CohortTests", dependencies: ["Cohort"], exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v5]
)
