// Region losses with a caller workspace: culoss_workspace_size, then culoss_compute with exactly
// that many bytes gives the same bits as with workspace = NULL, writes nothing past the end, and
// one byte less is refused.
#include <gtest/gtest.h>

#include <random>

#include "losses/region_check.hpp"
#include "losses/region_random.hpp"

namespace {

using namespace region_test;

TEST(RegionWorkspace, ExactWorkspaceGivesTheSameBits) {
  std::mt19937 rng(91);
  for (int it = 0; it < 150; ++it) {
    RegionCase rc = random_region_case(rng);
    if (it % 3 == 1) rc.input_dtype = testing_util::f32();
    if (it % 5 == 2) rc.input_dtype = testing_util::bf16();
    RunConfig null_ws, exact;
    exact.workspace = RunConfig::kExact;
    exact.in_place = null_ws.in_place = it % 4 == 3;
    const RunResult a = run_region(rc, null_ws), b = run_region(rc, exact);
    ASSERT_EQ(a.status, CULOSS_SUCCESS) << a.error << "\n  " << describe_case(rc);
    ASSERT_EQ(b.status, CULOSS_SUCCESS) << b.error << "\n  " << describe_case(rc);
    EXPECT_EQ(a.loss_bytes, b.loss_bytes) << describe_case(rc);
    EXPECT_EQ(a.grad_bytes, b.grad_bytes) << describe_case(rc);
    EXPECT_TRUE(b.workspace_guard_ok) << "wrote past the reported workspace size (" << b.workspace_bytes
                                      << " bytes)\n  " << describe_case(rc);
  }
}

TEST(RegionWorkspace, SizeDependsOnlyOnShapesAndDescriptor) {
  std::mt19937 rng(92);
  for (int it = 0; it < 40; ++it) {
    const RegionCase rc = random_region_case(rng);
    RegionCase other = rc;  // same shapes and options, other values
    for (double& x : other.input) x = -x;
    RunConfig exact;
    exact.workspace = RunConfig::kExact;
    const RunResult a = run_region(rc, exact), b = run_region(other, exact);
    ASSERT_EQ(a.status, CULOSS_SUCCESS) << a.error;
    ASSERT_EQ(b.status, CULOSS_SUCCESS) << b.error;
    EXPECT_EQ(a.workspace_bytes, b.workspace_bytes) << describe_case(rc);
  }
}

TEST(RegionWorkspace, OneByteShortIsRefused) {
  std::mt19937 rng(93);
  int refused = 0;
  for (int it = 0; it < 40; ++it) {
    const RegionCase rc = random_region_case(rng);
    RunConfig exact, shorter;
    exact.workspace = RunConfig::kExact;
    shorter.workspace = RunConfig::kShort;
    const RunResult a = run_region(rc, exact);
    ASSERT_EQ(a.status, CULOSS_SUCCESS) << a.error;
    if (a.workspace_bytes == 0) continue;
    const RunResult b = run_region(rc, shorter);
    EXPECT_EQ(b.status, CULOSS_ERROR_INSUFFICIENT_WORKSPACE) << describe_case(rc);
    ++refused;
  }
  // Region losses need per-(image, class) statistics, so some workspace is expected.
  EXPECT_GT(refused, 0);
}

}  // namespace
