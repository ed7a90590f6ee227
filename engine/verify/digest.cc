#include "ferry/digest.h"

// The streaming state type is only visible with static linking declarations.
#define XXH_STATIC_LINKING_ONLY
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>
#include <xxhash.h>
// Debian's libxxhash is built for plain x86-64 (SSE2); its *_dispatch
// entry points pick AVX2 or AVX-512 at run time where the CPU has them.
// This header maps the XXH3 calls below onto them.
#include <xxh_x86dispatch.h>

#include <cctype>
#include <charconv>

namespace ferry {

std::string Digest128::ToHex() const {
  return fmt::format("{:016x}{:016x}", high, low);
}

std::optional<Digest128> Digest128::FromHex(std::string_view hex) {
  if (hex.size() != 32) return std::nullopt;
  for (char c : hex) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return std::nullopt;
  }
  Digest128 d;
  for (int half = 0; half < 2; ++half) {
    std::string_view part = hex.substr(half * 16, 16);
    uint64_t value = 0;
    auto [end, ec] =
        std::from_chars(part.data(), part.data() + part.size(), value, 16);
    if (ec != std::errc() || end != part.data() + part.size()) {
      return std::nullopt;
    }
    (half == 0 ? d.high : d.low) = value;
  }
  return d;
}

struct Hasher::State {
  XXH3_state_t xxh;
};

Hasher::Hasher() : state_(new State) { Reset(); }

Hasher::~Hasher() { delete state_; }

void Hasher::Reset() { XXH3_128bits_reset(&state_->xxh); }

void Hasher::Update(const void* data, size_t size) {
  XXH3_128bits_update(&state_->xxh, data, size);
}

void Hasher::CopyFrom(const Hasher& other) {
  XXH3_copyState(&state_->xxh, &other.state_->xxh);
}

Digest128 Hasher::Final() const {
  XXH128_hash_t h = XXH3_128bits_digest(&state_->xxh);
  return {h.high64, h.low64};
}

Digest128 HashBuffer(const void* data, size_t size) {
  XXH128_hash_t h = XXH3_128bits(data, size);
  return {h.high64, h.low64};
}

}  // namespace ferry
