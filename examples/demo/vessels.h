// culoss-demo --scene vessels: thin curvilinear structures, Dice against Dice + clDice
// (vessels.cpp; docs/demo.md).
#pragma once

#include <cstdint>
#include <string>

namespace demo {

struct VesselOptions {
  int steps, batch, size, width, train, test;
  double lr;
  uint64_t seed;
  std::string out;  // empty: no picture
};

// Trains and compares; prints a table (and writes <out>/vessels.png). Returns an exit status.
int run_vessels(const VesselOptions& o);

}  // namespace demo
