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

// The scheme and authority of `url` ("https://host:port"), without a path:
// the collection's root, to which paths that start with '/' are joined.
std::string RootUrl(std::string_view url);

// The URL a browser downloads `path` from: the file's URL with the
// `download` query, so that the collection answers with an attachment.
std::string DownloadLink(std::string_view base_url, std::string_view path);

}  // namespace ferry
