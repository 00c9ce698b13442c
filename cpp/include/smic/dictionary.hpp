// Deprecated name of smic/ksvd.hpp (K-SVD dictionary learning), kept for programs written
// against 0.1; include smic/ksvd.hpp.
#pragma once
#include "smic/ksvd.hpp"
