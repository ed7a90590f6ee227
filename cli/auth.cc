#include "auth.h"

#include <sys/prctl.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace ferry::cli {
namespace {

Error UsageError(std::string message) {
  return Error(ErrorCode::kUsage, RetryClass::kStopRun, std::move(message));
}

std::string Environment(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

std::string WithoutTrailingSlash(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

// A cached Transfer API token stays in use while it has this much left.
constexpr std::chrono::seconds kTransferTokenMargin(60);

}  // namespace

void ProtectSecrets() { prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); }

void AddAuthOptions(CLI::App* app, AuthFlags* flags, bool collection) {
  if (collection) {
    app->add_option("--collection", flags->collection,
                    "Collection id, instead of a base URL: the Transfer API "
                    "gives its base URL (a URL option, if given too, is then "
                    "a folder on it, such as /project)");
  }
  app->add_option("--client-id", flags->client_id,
                  "Application (client) id for the client-credentials "
                  "grant (else $FERRY_CLIENT_ID)");
  app->add_option("--client-secret-file", flags->client_secret_file,
                  "File holding the application's secret, readable by its "
                  "owner only (else $FERRY_CLIENT_SECRET)");
  // Accepted only to refuse it with the reason: a secret among the
  // arguments can be read by every user of the machine.
  app->add_option("--client-secret", flags->client_secret_argument)->group("");
  app->add_option("--transfer-token-file", flags->transfer_token_file,
                  "File holding a Transfer API token, to resolve "
                  "--collection without an application (else "
                  "$FERRY_TRANSFER_TOKEN)");
  app->add_option("--token-cache", flags->token_cache,
                  "File keeping granted tokens between runs (default "
                  "$XDG_CACHE_HOME/ferry/tokens.json or "
                  "~/.cache/ferry/tokens.json)");
  app->add_flag("--no-token-cache", flags->no_token_cache,
                "Neither read nor keep granted tokens");
  app->add_option("--scope", flags->scopes,
                  "A further scope to ask for with the collection's (may "
                  "be repeated)");
  app->add_option("--auth-url", flags->auth_url, "Globus Auth's base URL")
      ->capture_default_str();
  app->add_option("--transfer-url", flags->transfer_url,
                  "The Transfer API's base URL")
      ->capture_default_str();
}

Authenticator::Authenticator(const AuthFlags& flags, const CommonFlags& common,
                             std::string ca_file, bool insecure,
                             spdlog::logger* log)
    : flags_(flags), common_(common), log_(log) {
  services_.auth_url = flags.auth_url;
  services_.transfer_url = flags.transfer_url;
  services_.ca_file = std::move(ca_file);
  services_.insecure = insecure;
  services_.trace = common.verbosity >= 3;
  services_.log = log;
}

bool Authenticator::HasClient() const {
  return !flags_.client_id.empty() || !Environment(kClientIdVariable).empty();
}

Status Authenticator::Check() const {
  if (!flags_.client_secret_argument.empty()) {
    return UsageError(
        "--client-secret is refused: every user of this machine can read a "
        "command's arguments. Put the secret in a file only you can read "
        "(--client-secret-file) or in $FERRY_CLIENT_SECRET, and consider "
        "the one just given as seen");
  }
  for (const auto& [option, url] :
       {std::pair{"--auth-url", &flags_.auth_url},
        std::pair{"--transfer-url", &flags_.transfer_url}}) {
    if (url->rfind("https://", 0) != 0) {
      return UsageError(std::string(option) + " " + *url +
                        " is refused: only https:// URLs are asked, since "
                        "secrets and tokens must not travel in clear");
    }
  }
  return {};
}

Status Authenticator::Client(ClientCredentials* client) {
  client->client_id = !flags_.client_id.empty()
                          ? flags_.client_id
                          : Environment(kClientIdVariable);
  if (client->client_id.empty()) {
    return UsageError("no application: --client-id or $FERRY_CLIENT_ID");
  }
  ProtectSecrets();
  if (!flags_.client_secret_file.empty()) {
    return ReadPrivateFile(flags_.client_secret_file, "client secret file",
                           &client->secret);
  }
  client->secret = Environment(kClientSecretVariable);
  if (client->secret.empty()) {
    return UsageError("client " + client->client_id +
                      " needs its secret: --client-secret-file FILE or "
                      "$FERRY_CLIENT_SECRET");
  }
  return {};
}

std::string Authenticator::CachePath() const {
  if (flags_.no_token_cache) return {};
  if (!flags_.token_cache.empty()) return flags_.token_cache;
  return TokenCache::DefaultPath();
}

Status Authenticator::TransferToken(std::string* token) {
  if (!flags_.transfer_token_file.empty()) {
    ProtectSecrets();
    return ReadPrivateFile(flags_.transfer_token_file,
                           "Transfer API token file", token);
  }
  if (std::string env = Environment(kTransferTokenVariable); !env.empty()) {
    ProtectSecrets();
    *token = env;
    return {};
  }
  if (!HasClient()) {
    return UsageError(
        "asking the Transfer API about a collection needs a token for it: "
        "--client-id with its secret, --transfer-token-file FILE or "
        "$FERRY_TRANSFER_TOKEN");
  }
  ClientCredentials client;
  if (Status s = Client(&client); !s.ok()) return s;
  std::vector<std::string> scopes = {kTransferScope};
  std::string cache_path = CachePath();
  std::string key = TokenCacheKey(client.client_id, scopes);
  if (!cache_path.empty()) {
    std::optional<GrantedToken> cached;
    Status s = TokenCache(cache_path).Find(key, kTransferTokenMargin, &cached);
    if (!s.ok() && s.error().code() == ErrorCode::kUsage) return s;
    if (cached) {
      *token = cached->access_token;
      return {};
    }
  }
  std::vector<GrantedToken> tokens;
  if (Status s = RequestClientTokens(services_, client, scopes, &tokens);
      !s.ok()) {
    return s;
  }
  *token = tokens.front().access_token;
  if (!cache_path.empty()) {
    Status s = TokenCache(cache_path).Store(key, tokens.front());
    if (!s.ok()) log_->warn("the token is not cached: {}", s.error().message());
  }
  return {};
}

Status Authenticator::LookUp(const std::string& collection_id,
                             CollectionInfo* info) {
  if (looked_up_ && looked_up_->id == collection_id) {
    *info = *looked_up_;
    return {};
  }
  if (!IsCollectionId(collection_id)) {
    return UsageError("'" + collection_id +
                      "' is not a collection id (a UUID such as "
                      "2f9a1c3e-0b6d-4e57-9a41-5c8e2d7b6f10)");
  }
  std::string token;
  if (Status s = TransferToken(&token); !s.ok()) return s;
  if (Status s = LookUpCollection(services_, token, collection_id, info);
      !s.ok()) {
    return s;
  }
  looked_up_ = *info;
  return {};
}

Status Authenticator::IdOfUrl(const std::string& url, std::string* id) {
  return CollectionIdOfUrl(services_, url, id);
}

Status Authenticator::ConfirmServer(const std::string& url,
                                    const std::string& id) {
  CollectionInfo info;
  if (Status s = LookUp(id, &info); !s.ok()) {
    return Error(s.error().code(), RetryClass::kStopRun,
                 url + " says it is collection " + id +
                     ", which cannot be confirmed: " + s.error().message());
  }
  if (!info.https_server || !SameServer(*info.https_server, url)) {
    return UsageError(
        url + " says it is collection " + id + ", but that collection is " +
        (info.https_server ? "at " + *info.https_server
                           : std::string("not served over HTTPS")) +
        "; no token for it goes to another server");
  }
  return {};
}

Status Authenticator::ResolveBaseUrl(const std::string& url,
                                     std::string* base_url) {
  if (flags_.collection.empty()) {
    if (url.empty()) {
      return UsageError("no collection: give its base URL or --collection ID");
    }
    *base_url = url;
    return {};
  }
  if (!url.empty() && url.front() != '/') {
    return UsageError(
        "with --collection, the URL option names a folder on "
        "the collection, starting with '/', not '" +
        url + "'");
  }
  CollectionInfo info;
  if (Status s = LookUp(flags_.collection, &info); !s.ok()) return s;
  if (!info.https_server) {
    return Error(
        ErrorCode::kHttp, RetryClass::kStopRun,
        "collection " + flags_.collection +
            (info.display_name.empty() ? std::string()
                                       : " (" + info.display_name + ")") +
            " has HTTPS turned off: its Transfer API document has "
            "no https_server, so its files cannot be reached over "
            "HTTPS");
  }
  *base_url = WithoutTrailingSlash(*info.https_server) + url;
  log_->info("collection {} is at {}", flags_.collection, *base_url);
  return {};
}

Status Authenticator::GrantSource(const std::string& collection_id,
                                  std::shared_ptr<ClientTokenSource>* source) {
  ClientTokenSource::Options options;
  options.services = services_;
  if (Status s = Client(&options.client); !s.ok()) return s;
  options.scopes.push_back(HttpsScope(collection_id));
  CollectionInfo info;
  if (Status s = LookUp(collection_id, &info); s.ok()) {
    if (info.needs_data_access) {
      options.scopes.push_back(DataAccessScope(collection_id));
    }
  } else if (s.error().code() == ErrorCode::kUsage ||
             s.error().code() == ErrorCode::kAuth) {
    // A bad or unknown id, a refused client, an unusable cache: the grant
    // below would fail the same way.
    return s;
  } else {
    log_->warn(
        "cannot tell whether collection {} needs the data_access scope ({}); "
        "asking without it",
        collection_id, s.error().message());
  }
  for (const std::string& scope : flags_.scopes) {
    options.scopes.push_back(scope);
  }
  options.cache_path = CachePath();
  std::shared_ptr<ClientTokenSource> made;
  if (Status s = ClientTokenSource::Start(std::move(options), &made); !s.ok()) {
    return s;
  }
  *source = std::move(made);
  return {};
}

Status Authenticator::CollectionAccess(const std::string& base_url,
                                       Access* access) {
  access->base_url = base_url;
  if (!common_.token_file.empty()) {
    ProtectSecrets();
    return ReadTokenFile(common_.token_file, &access->token);
  }
  if (std::string env = Environment(kTokenVariable); !env.empty()) {
    ProtectSecrets();
    if (!flags_.client_id.empty()) {
      log_->warn(
          "{} is set, and a token from it comes before the grant of "
          "--client-id; unset it to use the grant",
          kTokenVariable);
    }
    access->token = env;
    return {};
  }
  if (!HasClient()) {
    log_->warn(
        "no token (--token-file, {} or --client-id): requests go without "
        "one, as only a public collection allows",
        kTokenVariable);
    return {};
  }
  std::string id = flags_.collection;
  if (id.empty()) {
    if (Status s = IdOfUrl(base_url, &id); !s.ok()) {
      return Error(s.error().code(), RetryClass::kStopRun,
                   "a token for the collection needs its id, which was not "
                   "learned from its URL: " +
                       s.error().message() + "; give --collection ID");
    }
    if (Status s = ConfirmServer(base_url, id); !s.ok()) return s;
    log_->info("{} is collection {}", base_url, id);
  }
  access->collection_id = id;
  std::shared_ptr<ClientTokenSource> source;
  if (Status s = GrantSource(id, &source); !s.ok()) return s;
  access->source = std::move(source);
  return {};
}

Status Authenticator::GrantedCollectionToken(const std::string& url,
                                             std::string* token) {
  if (!HasClient()) {
    return UsageError(
        "a token is granted to an application: --client-id (or "
        "$FERRY_CLIENT_ID) with its secret");
  }
  std::string id = flags_.collection;
  if (id.empty()) {
    if (url.empty()) return UsageError("give --collection ID or --at URL");
    if (Status s = IdOfUrl(url, &id); !s.ok()) return s;
    if (Status s = ConfirmServer(url, id); !s.ok()) return s;
  }
  std::shared_ptr<ClientTokenSource> source;
  if (Status s = GrantSource(id, &source); !s.ok()) return s;
  *token = source->Current(nullptr);
  return {};
}

// --- resolve and token --------------------------------------------------

namespace {

struct ServiceCommand {
  AuthFlags auth;
  CommonFlags common;
  std::string ca_file;
  bool insecure = false;
  std::string target;
};

void AddServiceOptions(CLI::App* app, ServiceCommand* cmd, bool collection) {
  AddAuthOptions(app, &cmd->auth, collection);
  app->add_option("--ca-file", cmd->ca_file,
                  "CA certificates for the collection and the Globus APIs, "
                  "besides the system's");
  app->add_flag("--insecure", cmd->insecure,
                "Do not verify TLS certificates (unsafe)");
  AddLogFlags(app, &cmd->common);
}

// Prints the answer for a script; a stdout that takes nothing (a full
// disk, a closed pipe) fails the command rather than pass for an answer.
int PrintLine(const std::string& line, spdlog::logger& log) {
  if (std::printf("%s\n", line.c_str()) < 0 || std::fflush(stdout) != 0) {
    log.error("cannot write to standard output: {}", std::strerror(errno));
    return kExitFailed;
  }
  return kExitOk;
}

}  // namespace

Command AddResolveCommand(CLI::App& app) {
  auto cmd = std::make_shared<ServiceCommand>();
  CLI::App* resolve = app.add_subcommand(
      "resolve",
      "Print the base URL of a collection id, or the collection id of an "
      "https:// URL");
  resolve->add_option("target", cmd->target, "A collection id or a URL")
      ->required();
  AddServiceOptions(resolve, cmd.get(), /*collection=*/false);
  return {
      resolve, [cmd] {
        auto log = MakeLogger(cmd->common);
        if (cmd->insecure) WarnInsecure();
        Authenticator auth(cmd->auth, cmd->common, cmd->ca_file, cmd->insecure,
                           log.get());
        if (Status s = auth.Check(); !s.ok()) return Refused(*log, s.error());
        if (cmd->target.rfind("https://", 0) == 0 ||
            cmd->target.rfind("http://", 0) == 0) {
          std::string id;
          if (Status s = auth.IdOfUrl(cmd->target, &id); !s.ok()) {
            return Refused(*log, s.error());
          }
          return PrintLine(id, *log);
        }
        CollectionInfo info;
        if (Status s = auth.LookUp(cmd->target, &info); !s.ok()) {
          return Refused(*log, s.error());
        }
        if (!info.https_server) {
          log->error(
              "collection {}{} has HTTPS turned off: it has no base URL",
              cmd->target,
              info.display_name.empty() ? "" : " (" + info.display_name + ")");
          return kExitFailed;
        }
        return PrintLine(*info.https_server, *log);
      }};
}

Command AddTokenCommand(CLI::App& app) {
  auto cmd = std::make_shared<ServiceCommand>();
  CLI::App* token = app.add_subcommand(
      "token",
      "Print a token for a collection, granted to an application (from the "
      "cache while it is good for a minute more), on stdout only");
  CLI::Option* at =
      token->add_option("--at", cmd->target,
                        "A URL on the collection, whose id is learned from it");
  AddServiceOptions(token, cmd.get(), /*collection=*/true);
  at->excludes(token->get_option("--collection"));
  return {token, [cmd] {
            auto log = MakeLogger(cmd->common);
            if (cmd->insecure) WarnInsecure();
            Authenticator auth(cmd->auth, cmd->common, cmd->ca_file,
                               cmd->insecure, log.get());
            if (Status s = auth.Check(); !s.ok())
              return Refused(*log, s.error());
            std::string text;
            if (Status s = auth.GrantedCollectionToken(cmd->target, &text);
                !s.ok()) {
              return Refused(*log, s.error());
            }
            return PrintLine(text, *log);
          }};
}

}  // namespace ferry::cli
