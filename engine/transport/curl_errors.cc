#include "transport/curl_errors.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <ctime>

namespace ferry {
namespace {

// Retry-After is either a number of seconds or an HTTP date.
std::optional<std::chrono::milliseconds> ParseRetryAfter(
    const std::string& value) {
  if (value.empty()) return std::nullopt;
  long seconds = 0;
  auto [end, ec] =
      std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (ec == std::errc() && end == value.data() + value.size()) {
    return std::chrono::seconds(std::clamp(seconds, 0L, 3600L));
  }
  time_t when = curl_getdate(value.c_str(), nullptr);
  if (when < 0) return std::nullopt;
  long delta = static_cast<long>(when - std::time(nullptr));
  return std::chrono::seconds(std::clamp(delta, 0L, 3600L));
}

std::string Excerpt(const std::string& body) {
  std::string out;
  for (char c : body.substr(0, 200)) {
    out.push_back(c == '\n' || c == '\r' || c == '\t' ? ' ' : c);
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out.empty() ? out : ": " + out;
}

}  // namespace

Error ErrorFromCurl(CURLcode code, const std::string& detail) {
  std::string message = detail.empty() ? curl_easy_strerror(code) : detail;
  switch (code) {
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
      // The same certificate will fail every file.
      return Error(ErrorCode::kTls, RetryClass::kStopRun,
                   "TLS verification failed: " + message);
    case CURLE_SSL_CONNECT_ERROR:
      return Error(ErrorCode::kTls, RetryClass::kTransient, message);
    case CURLE_OPERATION_TIMEDOUT:
      return Error(ErrorCode::kTimeout, RetryClass::kTransient, message);
    case CURLE_PARTIAL_FILE:
      return Error(ErrorCode::kTruncated, RetryClass::kTransient, message);
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
      return Error(ErrorCode::kNetwork, RetryClass::kTransient, message);
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return Error(ErrorCode::kUsage, RetryClass::kStopRun, message);
    default:
      return Error(ErrorCode::kNetwork, RetryClass::kPermanent, message);
  }
}

Error ErrorFromHttpStatus(long status, const std::string& location,
                          const std::string& body,
                          const std::string& retry_after) {
  if (status >= 300 && status < 400) {
    // A collection redirects to its login page when it does not accept the
    // request's credentials; following it would save an HTML page as data.
    return Error(ErrorCode::kRedirect, RetryClass::kPermanent,
                 fmt::format("HTTP {} redirect to '{}' not followed "
                             "(treated as an authorization failure)",
                             status, location))
        .set_http_status(status);
  }
  if (status == 401) {
    return Error(ErrorCode::kAuth, RetryClass::kStopRun,
                 "HTTP 401: the collection refused the token (missing, "
                 "expired or for another collection)" +
                     Excerpt(body))
        .set_http_status(status);
  }
  if (status == 403) {
    return Error(ErrorCode::kHttp, RetryClass::kPermanent,
                 "HTTP 403: no permission on this path" + Excerpt(body))
        .set_http_status(status);
  }
  if (status == 404) {
    return Error(ErrorCode::kHttp, RetryClass::kPermanent,
                 "HTTP 404: no such file on the collection")
        .set_http_status(status);
  }
  bool transient = status == 408 || status == 429 || status >= 500;
  Error error(ErrorCode::kHttp,
              transient ? RetryClass::kTransient : RetryClass::kPermanent,
              fmt::format("HTTP {}{}", status, Excerpt(body)));
  error.set_http_status(status);
  if (auto wait = ParseRetryAfter(retry_after)) error.set_retry_after(*wait);
  return error;
}

}  // namespace ferry
