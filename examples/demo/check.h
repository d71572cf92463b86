// culoss-demo --check-gradients: the network's hand-written backward pass, checked.
#pragma once

#include <cstdint>

namespace demo {

// Prints what it checked and PASS or FAIL; returns 0 on PASS.
int check_gradients(uint64_t seed);

}  // namespace demo
