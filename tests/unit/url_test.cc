#include "ferry/url.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

TEST(EncodePath, KeepsUnreservedAndSlashes) {
  EXPECT_EQ(EncodePath("a/B-9._~/c"), "a/B-9._~/c");
}

TEST(EncodePath, EncodesReservedAndSpecialBytes) {
  EXPECT_EQ(EncodePath("a b"), "a%20b");
  EXPECT_EQ(EncodePath("a#b"), "a%23b");
  EXPECT_EQ(EncodePath("a?b"), "a%3Fb");
  EXPECT_EQ(EncodePath("100%"), "100%25");
  EXPECT_EQ(EncodePath("a+b&c=d;e"), "a%2Bb%26c%3Dd%3Be");
  EXPECT_EQ(EncodePath("é"), "%C3%A9");
  EXPECT_EQ(EncodePath("日"), "%E6%97%A5");
}

TEST(FileUrl, JoinsWithOneSlash) {
  EXPECT_EQ(FileUrl("https://h:8443", "a b/c"), "https://h:8443/a%20b/c");
  EXPECT_EQ(FileUrl("https://h/base/", "x"), "https://h/base/x");
  EXPECT_EQ(FileUrl("https://h/base//", "x"), "https://h/base/x");
}

}  // namespace
}  // namespace ferry
