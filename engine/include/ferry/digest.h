// XXH3-128 digests, written the way `xxhsum -H2` prints them: 32 lowercase
// hex digits, the high 64 bits first. Files hashed by ferry can be checked
// with that tool and the other way round.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ferry {

struct Digest128 {
  uint64_t high = 0;
  uint64_t low = 0;

  friend bool operator==(const Digest128&, const Digest128&) = default;

  std::string ToHex() const;
  // Parses 32 hex digits (either case); nullopt for anything else.
  static std::optional<Digest128> FromHex(std::string_view hex);
};

// Hashes bytes fed in order. Reusable: Reset() starts a new digest without
// allocating. Not thread-safe; one hasher per stream of bytes.
class Hasher {
 public:
  Hasher();
  ~Hasher();
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  void Reset();
  void Update(const void* data, size_t size);
  Digest128 Final() const;
  // Takes over another hasher's progress: both go on from the same bytes.
  void CopyFrom(const Hasher& other);

 private:
  struct State;
  State* state_;  // owned; XXH3 state needs 64-byte alignment
};

// The digest of one contiguous buffer.
Digest128 HashBuffer(const void* data, size_t size);

}  // namespace ferry
