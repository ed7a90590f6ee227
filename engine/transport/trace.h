// The HTTP trace of -v -v -v: what libcurl sends and receives, header
// lines and its own notes, never a body, with credentials cut out.
#pragma once

#include <curl/curl.h>
#include <spdlog/logger.h>

#include <string>
#include <string_view>

namespace ferry {

// Logs the traffic of `easy` at debug level on `log`, which must outlive
// the handle's transfers.
void EnableHttpTrace(CURL* easy, spdlog::logger* log);

// `line` with the value of every credential it carries replaced by
// "[redacted]": the Authorization and Cookie headers, and any "Bearer" or
// "Basic" credential elsewhere.
std::string RedactCredentials(std::string_view line);

}  // namespace ferry
