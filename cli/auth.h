// How a command finds its collection and its token: a base URL or a
// collection id resolved by the Transfer API; a token from a file, from the
// environment, or granted to an application by Globus Auth.
#pragma once

#include <spdlog/logger.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "ferry/globus.h"
#include "ferry/token_source.h"

namespace ferry::cli {

inline constexpr char kClientIdVariable[] = "FERRY_CLIENT_ID";
inline constexpr char kClientSecretVariable[] = "FERRY_CLIENT_SECRET";
inline constexpr char kTransferTokenVariable[] = "FERRY_TRANSFER_TOKEN";

struct AuthFlags {
  std::string collection;  // --collection ID
  std::string client_id;
  std::string client_secret_file;
  std::string client_secret_argument;  // refused: see AddAuthOptions
  std::string transfer_token_file;
  std::string token_cache;
  bool no_token_cache = false;
  std::vector<std::string> scopes;  // extra scopes for the grant
  std::string auth_url = GlobusServices().auth_url;
  std::string transfer_url = GlobusServices().transfer_url;
};

// Adds the options that choose the Globus services, the application's
// credentials and the token cache; with `collection`, also --collection.
void AddAuthOptions(CLI::App* app, AuthFlags* flags, bool collection);

// What a command learned about its collection and holds to reach it.
struct Access {
  std::string base_url;
  std::string collection_id;            // when known
  std::string token;                    // a fixed token; empty with `source`
  std::shared_ptr<TokenSource> source;  // a granted, renewing token
};

class Authenticator {
 public:
  Authenticator(const AuthFlags& flags, const CommonFlags& common,
                std::string ca_file, bool insecure, spdlog::logger* log);

  // Refuses what must never be accepted whatever else is given: a secret
  // among the arguments. Commands ask first.
  Status Check() const;

  // The base URL: `url` itself, or the https_server of --collection with
  // `url` (then a folder starting with '/', or empty) below it.
  Status ResolveBaseUrl(const std::string& url, std::string* base_url);

  // The collection's token for `base_url`, from the first source that has
  // one: --token-file, $FERRY_TOKEN, the client-credentials grant. None
  // at all is allowed (public collections), with a warning.
  Status CollectionAccess(const std::string& base_url, Access* access);

  // A token of the grant for the collection (by --collection, or learned
  // from `url`): what `ferry token` prints.
  Status GrantedCollectionToken(const std::string& url, std::string* token);

  // Looks up a collection id: its base URL, or an error saying why there
  // is none.
  Status LookUp(const std::string& collection_id, CollectionInfo* info);

  // The id of the collection serving `url`.
  Status IdOfUrl(const std::string& url, std::string* id);

  // Whether the Transfer API places collection `id` on the server of
  // `url`. Any server can name any collection in its login redirect, so
  // an id learned that way earns no token until this holds.
  Status ConfirmServer(const std::string& url, const std::string& id);

  const GlobusServices& services() const { return services_; }

 private:
  bool HasClient() const;
  Status Client(ClientCredentials* client);
  Status TransferToken(std::string* token);
  Status GrantSource(const std::string& collection_id,
                     std::shared_ptr<ClientTokenSource>* source);
  std::string CachePath() const;

  const AuthFlags& flags_;
  const CommonFlags& common_;
  GlobusServices services_;
  spdlog::logger* log_;
  std::optional<CollectionInfo> looked_up_;  // of --collection
};

// From now on the process writes no core dump and cannot be attached to
// by other processes of the same user: it holds a secret.
void ProtectSecrets();

// Commands `resolve` and `token`.
Command AddResolveCommand(CLI::App& app);
Command AddTokenCommand(CLI::App& app);

}  // namespace ferry::cli
