// Helpers for the public-API tests (tests/api): status + message assertions and "untouched"
// checks on output buffers. Everything goes through the public C API only.
#pragma once

#include <culoss/culoss.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include "common/test_tensor.hpp"

namespace api_test {

using testing_util::TestTensor;

// A value no call writes by accident; outputs are filled with it before a refused call.
constexpr double kSentinel = 1234.5;

inline std::string last_error() {
  const char* e = culoss_last_error();
  return e ? std::string(e) : std::string("<NULL>");
}

// EXPECT_REFUSED(call, CULOSS_ERROR_X, "word", ...): the call returns CULOSS_ERROR_X and
// culoss_last_error() contains every word.
#define EXPECT_REFUSED(expr, want, ...)                                                      \
  do {                                                                                       \
    const culoss_status api_got_ = (expr);                                                   \
    const std::string api_msg_ = ::api_test::last_error();                                   \
    EXPECT_EQ(static_cast<int>(want), static_cast<int>(api_got_))                            \
        << #expr << "\n  expected " << culoss_status_string(want) << ", got "                \
        << culoss_status_string(api_got_) << "\n  message: " << api_msg_;                    \
    for (const std::string& api_word_ : std::initializer_list<std::string>{__VA_ARGS__})     \
      EXPECT_THAT(api_msg_, ::testing::HasSubstr(api_word_)) << #expr;                       \
    EXPECT_FALSE(api_msg_.empty()) << #expr << ": a refusal must leave a message";           \
  } while (0)

#define EXPECT_OK(expr)                                                                      \
  do {                                                                                       \
    const culoss_status api_got_ = (expr);                                                   \
    EXPECT_EQ(0, static_cast<int>(api_got_))                                                 \
        << #expr << ": " << culoss_status_string(api_got_) << ": " << ::api_test::last_error(); \
  } while (0)

#define ASSERT_OK(expr)                                                                      \
  do {                                                                                       \
    const culoss_status api_got_ = (expr);                                                   \
    ASSERT_EQ(0, static_cast<int>(api_got_))                                                 \
        << #expr << ": " << culoss_status_string(api_got_) << ": " << ::api_test::last_error(); \
  } while (0)

// Remembers the bytes of buffers and checks later that nothing wrote them.
class Untouched {
 public:
  void watch(const void* p, size_t bytes, std::string name) {
    const auto* b = static_cast<const uint8_t*>(p);
    items_.push_back(Item{std::move(name), b, std::vector<uint8_t>(b, b + bytes)});
  }
  void watch(const TestTensor& t, std::string name) {
    watch(t.bytes.data(), t.bytes.size(), std::move(name));
  }
  template <class T>
  void watch(const std::vector<T>& v, std::string name) {
    watch(v.data(), v.size() * sizeof(T), std::move(name));
  }
  void check() const {
    for (const Item& it : items_)
      EXPECT_EQ(0, std::memcmp(it.where, it.copy.data(), it.copy.size()))
          << it.name << " was written by a call that failed";
  }

 private:
  struct Item {
    std::string name;
    const uint8_t* where;
    std::vector<uint8_t> copy;
  };
  std::vector<Item> items_;
};

// Deterministic logits in about [-2, 2].
inline void fill_logits(TestTensor& t) {
  for (int64_t i = 0; i < t.numel(); ++i) t.set(i, 2.0 * std::sin(0.7 * static_cast<double>(i) + 0.3));
}

}  // namespace api_test
