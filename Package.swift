// swift-tools-version:6.0
import Foundation
import PackageDescription

/// The element-wise kernels vectorise to the widest registers the compiler may use. Swift's default
/// x86-64 target is SSE2 (4 floats); on a machine with AVX2 and FMA (Intel since Haswell, 2013; every
/// AMD Zen), build for Haswell (8 floats): `cohort bench lstm` on one core ran ~10 % faster (4,830 ->
/// 5,340 images/s). Floating-point results are the same either way (Swift does not fuse
/// multiply-adds). With AVX-512 (Intel's servers since Skylake, AMD's Zen 4 and 5), build for
/// Skylake's server cores, let the loop vectoriser use 16-float registers (LLVM's Skylake tuning
/// keeps it to 8: `-prefer-256-bit`, reached through the Clang importer's target features; one
/// core of a Xeon family 6 model 207, medians of 5 alternating runs: lstm 6,274 -> 6,961 images/s,
/// resnet20 326 -> 336, mlp within the noise) and define COHORT_AVX512, which turns on the kernels
/// written in 16-float vectors (`Kernels/PanelProduct.swift`). A binary built this way needs those
/// instructions on every machine that runs it; COHORT_PORTABLE=1 builds for the x86-64 baseline instead.
let vectorFlags: [String] = {
    #if arch(x86_64)
    guard ProcessInfo.processInfo.environment["COHORT_PORTABLE"] == nil,
          let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let flagLine = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
    else { return [] }
    let flags = Set(flagLine.split(separator: " "))
    if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "fma", "bmi2"]) {
        return ["-target-cpu", "skylake-avx512", "-DCOHORT_AVX512", "-Xcc", "-Xclang", "-Xcc", "-target-feature", "-Xcc", "-Xclang", "-Xcc", "-prefer-256-bit"]
    }
    return flags.isSuperset(of: ["avx2", "fma", "bmi2"]) ? ["-target-cpu", "haswell"] : []
    #else
    return []
    #endif
}()

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
            swiftSettings: [.unsafeFlags(["-Ounchecked"] + vectorFlags, .when(configuration: .release))]
        ),
        .executableTarget(
            name: "cohort",
            dependencies: ["Cohort", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .testTarget(name: "CohortTests", dependencies: ["Cohort"], exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v5]
)
