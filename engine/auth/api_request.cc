#include "auth/api_request.h"

#include <curl/curl.h>
#include <strings.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "transport/curl_errors.h"
#include "transport/probe.h"
#include "transport/trace.h"

namespace ferry {
namespace {

constexpr size_t kMaxBody = 1 << 20;
constexpr long kConnectTimeoutSeconds = 30;
constexpr long kTimeoutSeconds = 60;

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* response = static_cast<ApiResponse*>(user);
  size_t n = size * count;
  if (response->body.size() + n > kMaxBody) return 0;  // ends the transfer
  response->body.append(data, n);
  return n;
}

std::string HeaderValue(std::string_view line, std::string_view name) {
  if (line.size() <= name.size() ||
      strncasecmp(line.data(), name.data(), name.size()) != 0) {
    return {};
  }
  std::string_view value = line.substr(name.size());
  size_t first = value.find_first_not_of(" \t");
  size_t last = value.find_last_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  return std::string(value.substr(first, last - first + 1));
}

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* response = static_cast<ApiResponse*>(user);
  size_t n = size * count;
  std::string_view line(data, n);
  if (line.rfind("HTTP/", 0) == 0) {
    // A new answer (after a 100 Continue, say): forget the last one's.
    response->content_type.clear();
    response->location.clear();
  }
  if (auto v = HeaderValue(line, "content-type:"); !v.empty()) {
    response->content_type = v;
  }
  if (auto v = HeaderValue(line, "location:"); !v.empty()) {
    response->location = v;
  }
  return n;
}

}  // namespace

Status SendApiRequest(const GlobusServices& services, const ApiRequest& request,
                      ApiResponse* response) {
  *response = {};
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> easy(curl_easy_init(),
                                                           curl_easy_cleanup);
  if (!easy) {
    return Error(ErrorCode::kInternal, RetryClass::kStopRun,
                 "curl_easy_init failed");
  }
  CURL* e = easy.get();
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "ferry/0.1");
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, kConnectTimeoutSeconds);
  curl_easy_setopt(e, CURLOPT_TIMEOUT, kTimeoutSeconds);
  SetTlsOptions(e, services.ca_file, services.insecure);
  if (services.trace && services.log != nullptr) {
    EnableHttpTrace(e, services.log);
  }
  curl_easy_setopt(e, CURLOPT_URL, request.url.c_str());
  if (request.method == "POST") {
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, request.body.c_str());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE,
                     static_cast<long>(request.body.size()));
  } else if (request.method == "HEAD") {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (request.method != "GET") {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  if (!request.user.empty()) {
    curl_easy_setopt(e, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(e, CURLOPT_USERNAME, request.user.c_str());
    curl_easy_setopt(e, CURLOPT_PASSWORD, request.password.c_str());
  }
  curl_slist* headers = nullptr;
  for (const std::string& h : request.headers) {
    headers = curl_slist_append(headers, h.c_str());
  }
  if (request.xhr) {
    headers = curl_slist_append(headers, "X-Requested-With: XMLHttpRequest");
  }
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> owned(
      headers, curl_slist_free_all);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, response);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, response);
  char error[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, error);
  CURLcode rc = curl_easy_perform(e);
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &response->status);
  if (rc != CURLE_OK) {
    if (rc == CURLE_WRITE_ERROR) {
      return Error(ErrorCode::kHttp, RetryClass::kPermanent,
                   request.url + ": the answer is larger than 1 MiB");
    }
    Error failure = ErrorFromCurl(rc, error);
    return Error(failure.code(), failure.retry_class(),
                 request.url + ": " + failure.message());
  }
  return {};
}

std::string DescribeApiError(const ApiResponse& response) {
  std::string what = "HTTP " + std::to_string(response.status);
  if (response.content_type.find("json") == std::string::npos) return what;
  auto doc = nlohmann::json::parse(response.body, nullptr, false);
  if (!doc.is_object()) return what;
  for (const char* key : {"error_description", "message", "error", "code"}) {
    auto it = doc.find(key);
    if (it != doc.end() && it->is_string() && !it->get<std::string>().empty()) {
      // Bounded: a message is for people, not a channel for the body.
      std::string text = it->get<std::string>().substr(0, 300);
      return what + " (" + text + ")";
    }
  }
  return what;
}

}  // namespace ferry
