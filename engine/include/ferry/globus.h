// What ferry asks of Globus itself, beside the collection: the Transfer
// API, which knows a collection's HTTPS base URL by its id, and Globus
// Auth, which grants an application (a client id and secret) tokens for a
// collection. Also the file that keeps granted tokens between runs.
#pragma once

#include <spdlog/logger.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/error.h"
#include "ferry/token_source.h"

namespace ferry {

// How to reach the Globus services. The defaults are the real ones; tests
// point both at the local stand-in.
struct GlobusServices {
  std::string auth_url = "https://auth.globus.org";
  std::string transfer_url = "https://transfer.api.globus.org";
  std::string ca_file;    // extra CA certificates; empty: the system's
  bool insecure = false;  // do not verify certificates
  bool trace = false;     // log request and response headers (redacted)
  spdlog::logger* log = nullptr;
};

inline constexpr char kTransferScope[] =
    "urn:globus:auth:scope:transfer.api.globus.org:all";
// The scope of a token for the HTTPS interface of collection `id`.
std::string HttpsScope(std::string_view collection_id);
// The scope a mapped collection that is not high-assurance also needs.
std::string DataAccessScope(std::string_view collection_id);

// A collection id as Globus writes them: a UUID. Other text is refused
// before it goes into a URL.
bool IsCollectionId(std::string_view text);

// Whether `token` can go into an Authorization header as it is: not empty,
// visible ASCII only (no space, control byte or line break).
bool IsHeaderSafeToken(std::string_view token);

// Whether two https:// URLs name the same server: scheme, host (in any
// case) and port (443 when none is written) alike. False when either
// cannot be parsed.
bool SameServer(const std::string& a, const std::string& b);

// What the Transfer API says about a collection.
struct CollectionInfo {
  std::string id;
  std::string display_name;
  std::optional<std::string> https_server;  // null: HTTPS is off
  bool needs_data_access = false;           // mapped and not high-assurance
};

// Asks the Transfer API for the endpoint document of `collection_id`,
// with a token for the Transfer API.
Status LookUpCollection(const GlobusServices& services,
                        const std::string& transfer_token,
                        const std::string& collection_id, CollectionInfo* info);

// The id of the collection that serves `url`, learned from the login
// redirect that a request without a token and without X-Requested-With
// gets. Nothing follows the redirect.
Status CollectionIdOfUrl(const GlobusServices& services, const std::string& url,
                         std::string* collection_id);

// An application's identity for the client-credentials grant.
struct ClientCredentials {
  std::string client_id;
  std::string secret;
};

// One token of a grant's answer.
struct GrantedToken {
  std::string access_token;
  std::string resource_server;
  std::string scope;  // space-separated
  std::chrono::system_clock::time_point expires_at;
};

// The OAuth2 client-credentials grant: one token per resource server of
// `scopes`, the first scope's first.
Status RequestClientTokens(const GlobusServices& services,
                           const ClientCredentials& client,
                           const std::vector<std::string>& scopes,
                           std::vector<GrantedToken>* tokens);

// Reads a secret (a client secret, a token) from the first line of a file
// that only its owner may read: a file that others can read, or that
// another user owns, is refused, since whatever it holds may have leaked.
Status ReadPrivateFile(const std::string& path, std::string_view what,
                       std::string* secret);

// Granted tokens kept between runs, in a JSON file that only its owner may
// read or write, keyed by client id and scopes. A file that others can
// read is refused. Several ferry processes may share it: every change is
// made under a lock and written whole under a temporary name first.
class TokenCache {
 public:
  // The default place: $XDG_CACHE_HOME/ferry/tokens.json, else
  // ~/.cache/ferry/tokens.json; empty when neither is known.
  static std::string DefaultPath();

  explicit TokenCache(std::string path) : path_(std::move(path)) {}

  // A token for `key` that stays valid for at least `margin` more, if
  // the cache has one.
  Status Find(const std::string& key, std::chrono::seconds margin,
              std::optional<GrantedToken>* token) const;
  // Keeps `token` for `key`, dropping tokens that have expired.
  Status Store(const std::string& key, const GrantedToken& token) const;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The tokens of a collection for a run, granted to an application: from
// the cache when it holds one that is valid long enough, else asked for;
// renewed by a thread of its own before it expires, and once on demand
// when the collection refuses it. The token never reaches a log.
class ClientTokenSource : public TokenSource {
 public:
  struct Options {
    GlobusServices services;
    ClientCredentials client;
    std::vector<std::string> scopes;  // the collection's, first
    std::string cache_path;           // empty: no cache
  };
  ~ClientTokenSource() override;

  // Gets the first token; an error when none can be had.
  static Status Start(Options options,
                      std::shared_ptr<ClientTokenSource>* source);

  std::string Current(uint64_t* generation) override;
  uint64_t generation() override;
  std::string Renew(const std::string& refused) override;

  // When the current token expires.
  std::chrono::system_clock::time_point expires_at();

 private:
  struct State;
  explicit ClientTokenSource(Options options);
  std::unique_ptr<State> state_;
};

// The key under which a client's token for `scopes` is cached.
std::string TokenCacheKey(const std::string& client_id,
                          const std::vector<std::string>& scopes);

}  // namespace ferry
