// URLs of files on a collection.
#pragma once

#include <string>
#include <string_view>

namespace ferry {

// Percent-encodes a relative path for use in a URL: every byte outside the
// unreserved set (letters, digits, "-._~") is encoded, except the '/' that
// separates segments. Non-ASCII bytes are encoded byte by byte, which is
// what a UTF-8 name needs.
std::string EncodePath(std::string_view path);

// The URL of `path` under `base_url`, with exactly one '/' between them.
std::string FileUrl(std::string_view base_url, std::string_view path);

}  // namespace ferry
