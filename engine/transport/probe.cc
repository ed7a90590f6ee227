#include "transport/probe.h"

#include <spdlog/spdlog.h>
#include <strings.h>

#include <algorithm>
#include <cctype>
#include <memory>

#include "transport/trace.h"

namespace ferry {
namespace {

constexpr long kConnectTimeoutSeconds = 30;
constexpr long kProbeTimeoutSeconds = 60;

std::string Trim(std::string_view text) {
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return "";
  size_t last = text.find_last_not_of(" \t\r\n");
  return std::string(text.substr(first, last - first + 1));
}

size_t OnProbeHeader(char* data, size_t size, size_t count, void* user) {
  auto* caps = static_cast<Capabilities*>(user);
  size_t n = size * count;
  std::string_view line(data, n);
  for (std::string_view name : {"allow:", "access-control-allow-methods:"}) {
    if (line.size() > name.size() &&
        strncasecmp(line.data(), name.data(), name.size()) == 0) {
      std::string value = Trim(line.substr(name.size()));
      std::transform(value.begin(), value.end(), value.begin(),
                     [](unsigned char c) { return std::toupper(c); });
      // Allow wins over the CORS header when both come.
      if (!caps->methods || name == "allow:") caps->methods = value;
    }
  }
  return n;
}

size_t Discard(char*, size_t size, size_t count, void*) { return size * count; }

}  // namespace

void SetConnectionOptions(CURL* e, const RunOptions& options) {
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "ferry/0.1");
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https,http");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(
      e, CURLOPT_HTTP_VERSION,
      options.http1 ? CURL_HTTP_VERSION_1_1 : CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, kConnectTimeoutSeconds);
  SetTlsOptions(e, options.ca_file, options.insecure);
  if (options.trace_http) {
    EnableHttpTrace(e, options.logger ? options.logger.get()
                                      : spdlog::default_logger_raw());
  }
}

void SetTlsOptions(CURL* e, const std::string& ca_file, bool insecure) {
  if (!ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, ca_file.c_str());
  if (insecure) {
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }
}

bool Capabilities::Allows(const std::string& method) const {
  if (!methods) return true;
  size_t start = 0;
  while (start <= methods->size()) {
    size_t comma = methods->find(',', start);
    std::string item = Trim(std::string_view(*methods).substr(
        start, comma == std::string::npos ? std::string::npos : comma - start));
    if (item == method) return true;
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return false;
}

Capabilities ProbeCollection(const RunOptions& options, std::string* problem) {
  Capabilities caps;
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> easy(curl_easy_init(),
                                                           curl_easy_cleanup);
  if (!easy) {
    *problem = "curl_easy_init failed";
    return caps;
  }
  CURL* e = easy.get();
  SetConnectionOptions(e, options);
  std::string url = options.base_url;
  if (url.empty() || url.back() != '/') url += '/';
  curl_slist* headers =
      curl_slist_append(nullptr, "X-Requested-With: XMLHttpRequest");
  if (!options.token.empty()) {
    headers = curl_slist_append(
        headers, ("Authorization: Bearer " + options.token).c_str());
  }
  char error[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "OPTIONS");
  curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &OnProbeHeader);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &caps);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Discard);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(e, CURLOPT_TIMEOUT, kProbeTimeoutSeconds);
  CURLcode rc = curl_easy_perform(e);
  curl_slist_free_all(headers);
  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  if (rc != CURLE_OK) {
    *problem = error[0] != '\0' ? error : curl_easy_strerror(rc);
    caps.methods.reset();
  } else if (status < 200 || status > 299) {
    *problem = "OPTIONS answered HTTP " + std::to_string(status);
    caps.methods.reset();
  } else {
    caps.answered = true;
  }
  return caps;
}

}  // namespace ferry
