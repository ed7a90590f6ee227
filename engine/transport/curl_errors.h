// Translation of libcurl's and HTTP's error spaces into ferry's Error.
#pragma once

#include <curl/curl.h>

#include <string>

#include "ferry/error.h"

namespace ferry {

// A transfer that libcurl ended with `code`; `detail` is its error buffer.
Error ErrorFromCurl(CURLcode code, const std::string& detail);

// A response with a status other than the one expected. `location` is the
// redirect target of a 3xx, `body` the start of an error body, and
// `retry_after` the Retry-After header's value, all possibly empty.
Error ErrorFromHttpStatus(long status, const std::string& location,
                          const std::string& body,
                          const std::string& retry_after);

}  // namespace ferry
