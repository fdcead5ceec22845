//! With the `host-emulation` feature, compiles `src/kernels.cu` as C++ for the host.

fn main() {
    println!("cargo:rerun-if-changed=src/kernels.cu");
    println!("cargo:rerun-if-changed=src/host_emulation.cpp");
    #[cfg(feature = "host-emulation")]
    cc::Build::new()
        .cpp(true)
        .file("src/host_emulation.cpp")
        .flag_if_supported("-ffp-contract=off")
        .warnings(true)
        .compile("vidlrp_cuda_host_emulation");
}
