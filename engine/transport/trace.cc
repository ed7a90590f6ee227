#include "transport/trace.h"

#include <strings.h>

#include <array>
#include <cctype>

namespace ferry {
namespace {

bool StartsWithNoCase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() &&
         strncasecmp(text.data(), prefix.data(), prefix.size()) == 0;
}

constexpr std::string_view kRedacted = "[redacted]";

// Headers whose whole value is a credential.
constexpr std::array<std::string_view, 4> kSecretHeaders = {
    "authorization:", "proxy-authorization:", "cookie:", "set-cookie:"};

// Auth schemes whose next word is a credential.
constexpr std::array<std::string_view, 2> kSchemes = {"bearer", "basic"};

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

int OnDebug(CURL*, curl_infotype type, char* data, size_t size, void* user) {
  auto* log = static_cast<spdlog::logger*>(user);
  const char* mark = nullptr;
  switch (type) {
    case CURLINFO_TEXT:
      mark = "*";
      break;
    case CURLINFO_HEADER_OUT:
      mark = ">";
      break;
    case CURLINFO_HEADER_IN:
      mark = "<";
      break;
    default:
      return 0;  // bodies and TLS records are never traced
  }
  std::string_view text(data, size);
  // A block of request headers comes at once; each line is logged alone.
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty()) log->debug("http {} {}", mark, RedactCredentials(line));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return 0;
}

}  // namespace

std::string RedactCredentials(std::string_view line) {
  for (std::string_view header : kSecretHeaders) {
    if (StartsWithNoCase(line, header)) {
      std::string out(line.substr(0, header.size()));
      std::string_view value = line.substr(header.size());
      while (!value.empty() && IsSpace(value.front())) value.remove_prefix(1);
      // The scheme name is no secret, and tells which credential it was.
      for (std::string_view scheme : kSchemes) {
        if (StartsWithNoCase(value, scheme) && value.size() > scheme.size() &&
            IsSpace(value[scheme.size()])) {
          out += ' ';
          out += value.substr(0, scheme.size());
        }
      }
      out += ' ';
      out += kRedacted;
      return out;
    }
  }
  std::string out;
  size_t i = 0;
  while (i < line.size()) {
    bool replaced = false;
    for (std::string_view scheme : kSchemes) {
      std::string_view rest = line.substr(i);
      bool word_start =
          i == 0 || !std::isalnum(static_cast<unsigned char>(line[i - 1]));
      if (word_start && StartsWithNoCase(rest, scheme) &&
          rest.size() > scheme.size() && IsSpace(rest[scheme.size()])) {
        size_t j = i + scheme.size();
        while (j < line.size() && IsSpace(line[j])) ++j;
        size_t k = j;
        while (k < line.size() && !IsSpace(line[k]) && line[k] != '\'' &&
               line[k] != '"' && line[k] != ',') {
          ++k;
        }
        if (k > j) {
          out.append(line.substr(i, j - i));
          out.append(kRedacted);
          i = k;
          replaced = true;
          break;
        }
      }
    }
    if (!replaced) out += line[i++];
  }
  return out;
}

void EnableHttpTrace(CURL* easy, spdlog::logger* log) {
  curl_easy_setopt(easy, CURLOPT_DEBUGFUNCTION, &OnDebug);
  curl_easy_setopt(easy, CURLOPT_DEBUGDATA, log);
  curl_easy_setopt(easy, CURLOPT_VERBOSE, 1L);
}

}  // namespace ferry
