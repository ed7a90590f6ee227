#include "ferry/digest.h"

#include <gtest/gtest.h>

#include <string>

namespace ferry {
namespace {

// Values printed by `xxhsum -H2` for the same inputs.
TEST(Digest, MatchesXxhsumOutput) {
  EXPECT_EQ(HashBuffer("", 0).ToHex(), "99aa06d3014798d86001c324468d497f");
  EXPECT_EQ(HashBuffer("a", 1).ToHex(), "a96faf705af16834e6c632b61e964e1f");
  EXPECT_EQ(HashBuffer("hello world", 11).ToHex(),
            "df8d09e93f874900a99b8775cc15b6c7");
}

TEST(Digest, StreamingEqualsOneShot) {
  std::string data(1 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
  Hasher h;
  for (size_t at = 0; at < data.size(); at += 4093) {
    h.Update(data.data() + at, std::min<size_t>(4093, data.size() - at));
  }
  EXPECT_EQ(h.Final(), HashBuffer(data.data(), data.size()));
  h.Reset();
  EXPECT_EQ(h.Final(), HashBuffer("", 0));
}

TEST(Digest, HexRoundTrip) {
  auto d = Digest128::FromHex("DF8D09E93F874900A99B8775CC15B6C7");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->ToHex(), "df8d09e93f874900a99b8775cc15b6c7");
  EXPECT_FALSE(Digest128::FromHex("df8d09e93f874900a99b8775cc15b6c"));
  EXPECT_FALSE(Digest128::FromHex("-f8d09e93f874900a99b8775cc15b6c7"));
  EXPECT_FALSE(Digest128::FromHex("xf8d09e93f874900a99b8775cc15b6c7"));
}

}  // namespace
}  // namespace ferry
