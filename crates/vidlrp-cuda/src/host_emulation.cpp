// The CUDA kernels compiled as plain C++ for the host: one "thread" runs each grid-stride loop.
// Built only with the `host-emulation` feature (see build.rs and src/emulated.rs).
#define VIDLRP_HOST_EMULATION
#include "kernels.cu"
