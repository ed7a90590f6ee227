#include "ferry/globus.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "auth/api_request.h"

namespace ferry {
namespace {

using SystemClock = std::chrono::system_clock;

std::string WithoutTrailingSlash(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

std::string FormEncode(std::string_view text) {
  std::string out;
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string PercentDecode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%' && i + 2 < text.size() &&
               std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      out += static_cast<char>(
          std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

// The value of query parameter `name` in `url`, percent-decoded.
std::optional<std::string> QueryParameter(std::string_view url,
                                          std::string_view name) {
  size_t q = url.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view query = url.substr(q + 1);
  if (size_t hash = query.find('#'); hash != std::string_view::npos) {
    query = query.substr(0, hash);
  }
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name && eq != std::string_view::npos) {
      return PercentDecode(pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

Error AuthError(std::string message) {
  return Error(ErrorCode::kAuth, RetryClass::kStopRun, std::move(message));
}

Error UsageError(std::string message) {
  return Error(ErrorCode::kUsage, RetryClass::kStopRun, std::move(message));
}

// Only the owner may read or write a file that holds a secret.
Status CheckPrivate(int fd, const std::string& path, std::string_view what) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return ErrorFromErrno(errno, "stat " + path);
  if (!S_ISREG(st.st_mode)) {
    return UsageError(std::string(what) + " " + path + " is not a file");
  }
  if (st.st_uid != geteuid()) {
    return UsageError(std::string(what) + " " + path +
                      " belongs to another user; refusing it");
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    return UsageError(std::string(what) + " " + path + " has mode " + mode +
                      ": others may read it, so it may have leaked; make it "
                      "private (chmod 600 " +
                      path +
                      ") and, if it holds a secret, consider "
                      "replacing that");
  }
  return {};
}

// A field of a JSON object, or the empty value when it is missing or of
// another type: the cache file and the servers' answers are not trusted to
// be well formed.
std::string StringField(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

int64_t IntegerField(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

std::optional<GrantedToken> TokenFromJson(const nlohmann::json& doc) {
  if (!doc.is_object()) return std::nullopt;
  auto token = doc.find("access_token");
  auto expires = doc.find("expires_in");
  if (token == doc.end() || !token->is_string() ||
      !IsHeaderSafeToken(token->get_ref<const std::string&>()) ||
      expires == doc.end() || !expires->is_number()) {
    return std::nullopt;
  }
  GrantedToken out;
  out.access_token = token->get<std::string>();
  out.resource_server = StringField(doc, "resource_server");
  out.scope = StringField(doc, "scope");
  double seconds = std::max(0.0, expires->get<double>());
  out.expires_at =
      SystemClock::now() + std::chrono::seconds(static_cast<int64_t>(seconds));
  return out;
}

}  // namespace

std::string HttpsScope(std::string_view collection_id) {
  return "https://auth.globus.org/scopes/" + std::string(collection_id) +
         "/https";
}

std::string DataAccessScope(std::string_view collection_id) {
  return "https://auth.globus.org/scopes/" + std::string(collection_id) +
         "/data_access";
}

bool IsHeaderSafeToken(std::string_view token) {
  return !token.empty() &&
         std::all_of(token.begin(), token.end(),
                     [](unsigned char c) { return c > 0x20 && c < 0x7f; });
}

bool SameServer(const std::string& a, const std::string& b) {
  auto server = [](const std::string& url, std::string* out) {
    std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> parsed(
        curl_url(), &curl_url_cleanup);
    if (!parsed || curl_url_set(parsed.get(), CURLUPART_URL, url.c_str(), 0) !=
                       CURLUE_OK) {
      return false;
    }
    out->clear();
    for (auto [part, flags] :
         {std::pair{CURLUPART_SCHEME, 0u}, std::pair{CURLUPART_HOST, 0u},
          std::pair{CURLUPART_PORT, unsigned{CURLU_DEFAULT_PORT}}}) {
      char* text = nullptr;
      if (curl_url_get(parsed.get(), part, &text, flags) != CURLUE_OK) {
        return false;
      }
      for (const char* c = text; *c != '\0'; ++c) {
        out->push_back(
            static_cast<char>(std::tolower(static_cast<unsigned char>(*c))));
      }
      out->push_back(' ');
      curl_free(text);
    }
    return true;
  };
  std::string server_a, server_b;
  return server(a, &server_a) && server(b, &server_b) && server_a == server_b;
}

bool IsCollectionId(std::string_view text) {
  // 8-4-4-4-12 hexadecimal digits.
  if (text.size() != 36) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? text[i] != '-'
             : !std::isxdigit(static_cast<unsigned char>(text[i]))) {
      return false;
    }
  }
  return true;
}

Status LookUpCollection(const GlobusServices& services,
                        const std::string& transfer_token,
                        const std::string& collection_id,
                        CollectionInfo* info) {
  if (!IsCollectionId(collection_id)) {
    return UsageError("'" + collection_id +
                      "' is not a collection id (a UUID such as "
                      "2f9a1c3e-0b6d-4e57-9a41-5c8e2d7b6f10)");
  }
  ApiRequest request;
  request.url = WithoutTrailingSlash(services.transfer_url) +
                "/v0.10/endpoint/" + collection_id;
  request.headers.push_back("Authorization: Bearer " + transfer_token);
  ApiResponse response;
  if (Status s = SendApiRequest(services, request, &response); !s.ok()) {
    return Error(s.error().code(), RetryClass::kStopRun,
                 "cannot ask the Transfer API about collection " +
                     collection_id + ": " + s.error().message());
  }
  if (response.status == 404) {
    return UsageError("the Transfer API knows no collection " + collection_id +
                      " (" + DescribeApiError(response) + ")");
  }
  if (response.status == 401 || response.status == 403) {
    return AuthError("the Transfer API refused the token for it: " +
                     DescribeApiError(response));
  }
  if (response.status != 200) {
    return Error(ErrorCode::kHttp, RetryClass::kStopRun,
                 "the Transfer API answered " + DescribeApiError(response) +
                     " for collection " + collection_id);
  }
  auto doc = nlohmann::json::parse(response.body, nullptr, false);
  if (!doc.is_object() || !doc.contains("https_server")) {
    return Error(ErrorCode::kHttp, RetryClass::kStopRun,
                 "the Transfer API's document for collection " + collection_id +
                     " has no https_server");
  }
  info->id = collection_id;
  info->display_name = StringField(doc, "display_name");
  const auto& server = doc["https_server"];
  info->https_server.reset();
  if (server.is_string() && !server.get<std::string>().empty()) {
    info->https_server = server.get<std::string>();
  }
  std::string entity = StringField(doc, "entity_type");
  bool high_assurance = doc.contains("high_assurance") &&
                        doc["high_assurance"].is_boolean() &&
                        doc["high_assurance"].get<bool>();
  info->needs_data_access =
      entity == "GCSv5_mapped_collection" && !high_assurance;
  return {};
}

Status CollectionIdOfUrl(const GlobusServices& services, const std::string& url,
                         std::string* collection_id) {
  if (url.rfind("https://", 0) != 0) {
    return UsageError("'" + url + "' is not an https:// URL");
  }
  ApiRequest request;
  request.url = url;
  request.method = "HEAD";
  ApiResponse response;
  if (Status s = SendApiRequest(services, request, &response); !s.ok()) {
    return s;
  }
  if (response.status < 300 || response.status > 399 ||
      response.location.empty()) {
    return Error(ErrorCode::kHttp, RetryClass::kStopRun,
                 url + " answered HTTP " + std::to_string(response.status) +
                     " without a login redirect, so it names no collection "
                     "(is it a public file, or not a Globus collection?)");
  }
  auto id = QueryParameter(response.location, "client_id");
  if (!id || !IsCollectionId(*id)) {
    return Error(ErrorCode::kHttp, RetryClass::kStopRun,
                 url + " redirects to a login that names no collection id");
  }
  *collection_id = *id;
  return {};
}

Status RequestClientTokens(const GlobusServices& services,
                           const ClientCredentials& client,
                           const std::vector<std::string>& scopes,
                           std::vector<GrantedToken>* tokens) {
  tokens->clear();
  std::string scope;
  for (const std::string& s : scopes) {
    if (!scope.empty()) scope += ' ';
    scope += s;
  }
  if (services.log != nullptr) {
    services.log->info("asking Globus Auth for a token of client {} for {}",
                       client.client_id, scope);
  }
  ApiRequest request;
  request.method = "POST";
  request.url = WithoutTrailingSlash(services.auth_url) + "/v2/oauth2/token";
  request.headers.push_back("Content-Type: application/x-www-form-urlencoded");
  request.body = "grant_type=client_credentials&scope=" + FormEncode(scope);
  request.user = client.client_id;
  request.password = client.secret;
  ApiResponse response;
  if (Status s = SendApiRequest(services, request, &response); !s.ok()) {
    return Error(s.error().code(), RetryClass::kStopRun,
                 "cannot ask Globus Auth for a token: " + s.error().message());
  }
  if (response.status == 401 || response.status == 403) {
    return AuthError("Globus Auth refused client " + client.client_id + ": " +
                     DescribeApiError(response) +
                     " (wrong client id or secret?)");
  }
  if (response.status != 200) {
    return AuthError("Globus Auth granted no token for '" + scope +
                     "': " + DescribeApiError(response));
  }
  auto doc = nlohmann::json::parse(response.body, nullptr, false);
  auto first = TokenFromJson(doc);
  if (!first) {
    return AuthError(
        "Globus Auth's answer holds no usable access_token and "
        "expires_in");
  }
  tokens->push_back(*first);
  if (auto others = doc.find("other_tokens");
      others != doc.end() && others->is_array()) {
    for (const auto& other : *others) {
      if (auto t = TokenFromJson(other)) tokens->push_back(*t);
    }
  }
  return {};
}

Status ReadPrivateFile(const std::string& path, std::string_view what,
                       std::string* secret) {
  // Not blocking, so that a FIFO or a device given by mistake is refused
  // by the check below instead of hanging on open.
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    Error e = ErrorFromErrno(errno, std::string(what) + " " + path);
    return Error(ErrorCode::kUsage, RetryClass::kStopRun, e.message());
  }
  Status checked = CheckPrivate(fd, path, what);
  if (!checked.ok()) {
    close(fd);
    return checked;
  }
  std::string text;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof buffer)) > 0 && text.size() < 65536) {
    text.append(buffer, static_cast<size_t>(n));
  }
  int err = errno;
  close(fd);
  // The first line, without surrounding blanks, copied once; everything
  // read is wiped before any return.
  const size_t end = std::min(text.find('\n'), text.size());
  const bool too_long = end == text.size() && text.size() >= 65536;
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  size_t first = 0;
  size_t last = end;
  while (first < last && blank(text[first])) ++first;
  while (last > first && blank(text[last - 1])) --last;
  if (n >= 0 && !too_long) secret->assign(text, first, last - first);
  const bool empty = text.empty();
  explicit_bzero(text.data(), text.size());
  explicit_bzero(buffer, sizeof buffer);
  if (n < 0) return ErrorFromErrno(err, "read " + path);
  if (too_long) {
    return UsageError(std::string(what) + " " + path +
                      " does not hold a line of less than 64 KiB");
  }
  if (first == last) {
    return UsageError(std::string(what) + " " + path +
                      (empty ? " is empty" : ": its first line is blank"));
  }
  return {};
}

// --- the token cache ------------------------------------------------------

std::string TokenCache::DefaultPath() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg == '/') {
    return std::string(xdg) + "/ferry/tokens.json";
  }
  if (const char* home = std::getenv("HOME"); home && *home == '/') {
    return std::string(home) + "/.cache/ferry/tokens.json";
  }
  return {};
}

std::string TokenCacheKey(const std::string& client_id,
                          const std::vector<std::string>& scopes) {
  std::vector<std::string> sorted = scopes;
  std::sort(sorted.begin(), sorted.end());
  std::string key = client_id;
  for (const std::string& s : sorted) key += ' ' + s;
  return key;
}

namespace {

// Reads the cache's JSON from `path`; an empty object when there is none.
Status ReadCacheFile(const std::string& path, nlohmann::json* doc) {
  *doc = nlohmann::json::object();
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT) return {};
    return ErrorFromErrno(errno, "token cache " + path);
  }
  Status checked = CheckPrivate(fd, path, "token cache");
  std::string text;
  if (checked.ok()) {
    char buffer[65536];
    ssize_t n;
    while ((n = read(fd, buffer, sizeof buffer)) > 0) {
      text.append(buffer, static_cast<size_t>(n));
    }
  }
  close(fd);
  if (!checked.ok()) return checked;
  auto parsed = nlohmann::json::parse(text, nullptr, false);
  // A damaged cache is only a cache: start it anew.
  if (parsed.is_object()) *doc = std::move(parsed);
  explicit_bzero(text.data(), text.size());
  return {};
}

// Holds the cache's lock file, which sits beside it, while alive.
class CacheLock {
 public:
  explicit CacheLock(const std::string& path) {
    // The folders above it too (~/.cache may not exist yet), each made
    // private; folders that exist are left as they are.
    size_t slash = path.rfind('/');
    for (size_t at = path.find('/', 1);
         slash != std::string::npos && at != std::string::npos && at <= slash;
         at = path.find('/', at + 1)) {
      mkdir(path.substr(0, at).c_str(), 0700);
    }
    fd_ = open((path + ".lock").c_str(),
               O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd_ >= 0) flock(fd_, LOCK_EX);
  }
  ~CacheLock() {
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

int64_t ToUnix(SystemClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch())
      .count();
}

}  // namespace

Status TokenCache::Find(const std::string& key, std::chrono::seconds margin,
                        std::optional<GrantedToken>* token) const {
  token->reset();
  nlohmann::json doc;
  if (Status s = ReadCacheFile(path_, &doc); !s.ok()) return s;
  auto tokens = doc.find("tokens");
  if (tokens == doc.end() || !tokens->is_object()) return {};
  auto entry = tokens->find(key);
  if (entry == tokens->end() || !entry->is_object()) return {};
  GrantedToken t;
  t.access_token = StringField(*entry, "access_token");
  t.resource_server = StringField(*entry, "resource_server");
  t.scope = StringField(*entry, "scope");
  // Clamped to a time the clock can hold (the year 2242): a damaged value
  // must not overflow it.
  int64_t expires = std::clamp<int64_t>(IntegerField(*entry, "expires_at"), 0,
                                        int64_t{1} << 33);
  t.expires_at = SystemClock::time_point(std::chrono::seconds(expires));
  // An entry that could not be sent (damaged, or written by hand) is as
  // good as none: a new token replaces it.
  if (!IsHeaderSafeToken(t.access_token) ||
      t.expires_at - margin <= SystemClock::now()) {
    return {};
  }
  *token = std::move(t);
  return {};
}

Status TokenCache::Store(const std::string& key,
                         const GrantedToken& token) const {
  CacheLock lock(path_);
  if (!lock.ok()) return ErrorFromErrno(errno, "token cache lock " + path_);
  nlohmann::json doc;
  if (Status s = ReadCacheFile(path_, &doc); !s.ok()) return s;
  nlohmann::json& tokens = doc["tokens"];
  if (!tokens.is_object()) tokens = nlohmann::json::object();
  int64_t now = ToUnix(SystemClock::now());
  for (auto it = tokens.begin(); it != tokens.end();) {
    bool expired = !it->is_object() || IntegerField(*it, "expires_at") <= now;
    it = expired ? tokens.erase(it) : std::next(it);
  }
  tokens[key] = {{"access_token", token.access_token},
                 {"resource_server", token.resource_server},
                 {"scope", token.scope},
                 {"expires_at", ToUnix(token.expires_at)}};
  std::string text = doc.dump(1) + "\n";
  // mkostemp replaces the template's last six characters.
  std::string temp = path_ + "." + std::string(6, 'X');
  int fd = mkostemp(temp.data(), O_CLOEXEC);  // mode 0600
  if (fd < 0) return ErrorFromErrno(errno, "token cache " + temp);
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      int err = errno;
      close(fd);
      unlink(temp.c_str());
      return ErrorFromErrno(err, "write " + temp);
    }
    done += static_cast<size_t>(n);
  }
  explicit_bzero(text.data(), text.size());
  close(fd);
  if (rename(temp.c_str(), path_.c_str()) != 0) {
    int err = errno;
    unlink(temp.c_str());
    return ErrorFromErrno(err, "rename " + temp);
  }
  return {};
}

}  // namespace ferry
