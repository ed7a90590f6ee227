// Where a run's bearer token comes from when it may change while the run
// goes on: a token that expires and is renewed, or one that is replaced
// after the collection refused it.
#pragma once

#include <cstdint>
#include <string>

namespace ferry {

class TokenSource {
 public:
  virtual ~TokenSource() = default;

  // The token that new requests should carry, and a number that changes
  // whenever the token does. Cheap and thread-safe: the transfer loop asks
  // between transfers.
  virtual std::string Current(uint64_t* generation) = 0;
  // The number Current() would give, without copying the token.
  virtual uint64_t generation() = 0;

  // The collection refused `refused`: returns a token to try instead (the
  // current one when it was renewed meanwhile), or an empty string when no
  // other can be had. May block while a new token is asked for.
  virtual std::string Renew(const std::string& refused) = 0;
};

}  // namespace ferry
