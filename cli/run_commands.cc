// The commands that talk to a collection: get, put, rm and stat run the
// engine over a manifest; link only prints a URL.
#include <chrono>
#include <cstdio>
#include <map>

#include "auth.h"
#include "commands.h"
#include "ferry/run.h"
#include "ferry/url.h"

namespace ferry::cli {
namespace {

struct RunCommand {
  RunOptions options;
  CommonFlags flags;
  AuthFlags auth;
  std::string url;             // the URL option as given: --from, --to or --at
  std::string sync;            // as given; checked by CLI11
  std::string format;          // as given; checked by CLI11
  double backoff_base = 0.25;  // seconds
  double backoff_cap = 30;     // seconds
  int stall_seconds = 60;
  int deadline_seconds = 0;
  std::string max_rate;             // as given; checked by ParseByteRate
  std::string split_above = "64M";  // as given; checked by ParseByteSize
  std::string range_size = "16M";

  int Run() {
    auto log = MakeLogger(flags);
    options.logger = log;
    options.trace_http = flags.verbosity >= 3;
    if (options.insecure) WarnInsecure();
    Authenticator authenticator(auth, flags, options.ca_file, options.insecure,
                                log.get());
    if (Status s = authenticator.Check(); !s.ok()) {
      return Refused(*log, s.error());
    }
    if (Status s = authenticator.ResolveBaseUrl(url, &options.base_url);
        !s.ok()) {
      return Refused(*log, s.error());
    }
    Access access;
    if (Status s = authenticator.CollectionAccess(options.base_url, &access);
        !s.ok()) {
      return Refused(*log, s.error());
    }
    options.token = access.token;
    options.token_source = access.source;
    if (!flags.token_file.empty()) {
      // A refused token may have been replaced in its file meanwhile (by
      // whatever renews it): read it again, once per refusal.
      options.refresh_token = [this, log] {
        std::string fresh;
        return LoadToken(flags, *log, &fresh) ? fresh : std::string();
      };
    }
    options.retry.base_delay =
        std::chrono::milliseconds(static_cast<int64_t>(backoff_base * 1000));
    options.retry.max_delay =
        std::chrono::milliseconds(static_cast<int64_t>(backoff_cap * 1000));
    options.retry.stall = std::chrono::seconds(stall_seconds);
    options.retry.deadline = std::chrono::seconds(deadline_seconds);
    if (!sync.empty()) options.sync = *ParseSyncLevel(sync);
    if (!max_rate.empty()) options.max_rate = *ParseByteRate(max_rate);
    options.split_above = static_cast<uint64_t>(*ParseByteSize(split_above));
    options.range_size = static_cast<uint64_t>(*ParseByteSize(range_size));
    if (format == "ferry") options.format = ManifestFormat::kFerry;
    if (format == "globus-batch") options.format = ManifestFormat::kGlobusBatch;
    options.progress = flags.no_progress || flags.quiet ? ProgressMode::kNever
                       : flags.progress                 ? ProgressMode::kAlways
                                                        : ProgressMode::kAuto;
    options.interrupt = CatchInterrupts();
    RunSummary summary;
    Status status = ferry::Run(options, &summary);
    if (!status.ok()) return Refused(*log, status.error());
    if (!flags.quiet) std::fprintf(stderr, "%s\n", summary.ToText().c_str());
    if (int code = InterruptExitCode(); code != 0) return code;
    return summary.all_ok() ? kExitOk : kExitFailed;
  }
};

// How large downloads are split.
void AddRangeOptions(CLI::App* app, RunCommand* cmd) {
  auto size = [](const std::string& text) -> std::string {
    if (ParseByteSize(text)) return "";
    return "a size such as 64M or 1G was expected, not '" + text + "'";
  };
  app->add_option("--split-above", cmd->split_above,
                  "Downloads of at least this size (by the manifest's size "
                  "column) go in ranges on several streams at once (0: "
                  "never)")
      ->capture_default_str()
      ->check(size);
  app->add_option("--range-size", cmd->range_size,
                  "Bytes per range of a split download")
      ->capture_default_str()
      ->check(size)
      ->check([](const std::string& text) -> std::string {
        auto bytes = ParseByteSize(text);
        return bytes && *bytes >= 64 * 1024 ? "" : "at least 64K";
      });
  app->add_option("--streams-per-file", cmd->options.streams_per_file,
                  "Ranges of one split download in flight at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app->add_flag("--direct", cmd->options.direct_io,
                "Write split downloads with O_DIRECT, past the page cache "
                "(they are then read back from the disk to be hashed)");
}

// The options of every command that runs over a manifest.
std::shared_ptr<RunCommand> AddRunOptions(CLI::App* app, Operation op) {
  auto cmd = std::make_shared<RunCommand>();
  RunOptions& o = cmd->options;
  o.op = op;
  app->add_option("manifest", o.manifest,
                  "Manifest: one relative path per line, or "
                  "path<TAB>size<TAB>xxh128, or a Globus batch file")
      ->required();
  app->add_option("--format", cmd->format,
                  "Manifest format; detected (and announced) when not given")
      ->check(CLI::IsMember({"ferry", "globus-batch"}));
  app->add_option("--token-file", cmd->flags.token_file,
                  "File holding the bearer token (else $FERRY_TOKEN, else "
                  "one granted to --client-id)");
  AddAuthOptions(app, &cmd->auth, /*collection=*/true);
  app->add_option("--ca-file", o.ca_file,
                  "CA certificates for the collection and the Globus APIs, "
                  "besides the system's");
  app->add_option("--report", o.report,
                  "Write one JSON line per file to this file");
  app->add_option("--streams", o.streams, "Requests in flight at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app->add_option("--connections", o.connections,
                  "Connections to the collection, at most")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app->add_option("--max-requests", o.max_requests,
                  "Requests that may start in any one second, spread evenly "
                  "(0: no limit)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e6));
  app->add_option("--max-rate", cmd->max_rate,
                  "Bytes per second sent and received by the whole run, "
                  "such as 20M (K, M, G: 1024, 1024^2, 1024^3; 0: no limit)")
      ->check([](const std::string& text) -> std::string {
        if (ParseByteRate(text)) return "";
        return "a rate such as 500K, 20M or 1.5G (bytes per second) was "
               "expected, not '" +
               text + "'";
      });
  app->add_flag("--http1.1", o.http1,
                "Use HTTP/1.1: one request per connection at a time");
  app->add_option("--attempts", o.retry.max_attempts,
                  "Attempts per file before it counts as failed")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app->add_option("--backoff", cmd->backoff_base,
                  "Seconds of the first retry's longest wait; each retry "
                  "doubles it, and the wait is a random part of it")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3600.0));
  app->add_option("--backoff-max", cmd->backoff_cap,
                  "Seconds a retry waits at most (a server's Retry-After "
                  "may ask for longer)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 86400.0));
  app->add_option("--max-failing", o.retry.max_failing,
                  "Files retrying at once before no new file starts")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app->add_option("--stall-timeout", cmd->stall_seconds,
                  "Seconds without a byte before a transfer counts as "
                  "stalled and is retried")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  app->add_option("--deadline", cmd->deadline_seconds,
                  "Stop the run after this many seconds, leaving downloads "
                  "resumable (0: no limit)")
      ->capture_default_str()
      ->check(CLI::Range(0, 31 * 86400));
  app->add_flag("--insecure", o.insecure,
                "Do not verify TLS certificates, the collection's or the "
                "Globus APIs' (unsafe)");
  AddProgressFlags(app, &cmd->flags);
  AddLogFlags(app, &cmd->flags);
  return cmd;
}

void AddSyncOption(CLI::App* app, RunCommand& cmd) {
  app->add_option("--sync", cmd.sync,
                  "Leave alone a file whose destination exists (exists), has "
                  "the same size (size), is not older (mtime) or has the "
                  "manifest's xxh128 (checksum)")
      ->check(CLI::IsMember({"exists", "size", "mtime", "checksum"}));
}

}  // namespace

Command AddGetCommand(CLI::App& app) {
  CLI::App* get = app.add_subcommand(
      "get", "Download every file named in MANIFEST from a collection");
  auto cmd = AddRunOptions(get, Operation::kGet);
  get->add_option("--from", cmd->url,
                  "The collection's HTTPS base URL (with --collection: a "
                  "folder on it)");
  get->add_option("--to", cmd->options.local_dir, "Local destination folder")
      ->required();
  AddSyncOption(get, *cmd);
  AddRangeOptions(get, cmd.get());
  return {get, [cmd] { return cmd->Run(); }};
}

Command AddPutCommand(CLI::App& app) {
  CLI::App* put = app.add_subcommand(
      "put", "Upload every file named in MANIFEST to a collection");
  auto cmd = AddRunOptions(put, Operation::kPut);
  put->add_option("--from", cmd->options.local_dir, "Local source folder")
      ->required();
  put->add_option("--to", cmd->url,
                  "The collection's HTTPS base URL (with --collection: a "
                  "folder on it)");
  AddSyncOption(put, *cmd);
  return {put, [cmd] { return cmd->Run(); }};
}

Command AddRmCommand(CLI::App& app) {
  CLI::App* rm = app.add_subcommand(
      "rm", "Delete every file named in MANIFEST from a collection");
  auto cmd = AddRunOptions(rm, Operation::kRemove);
  rm->add_option("--at", cmd->url,
                 "The collection's HTTPS base URL (with --collection: a "
                 "folder on it)");
  rm->add_flag("--strict", cmd->options.strict,
               "A file that is already absent counts as failed");
  return {rm, [cmd] { return cmd->Run(); }};
}

Command AddStatCommand(CLI::App& app) {
  CLI::App* stat = app.add_subcommand(
      "stat",
      "List size and type of every file named in MANIFEST on a collection: "
      "path<TAB>size<TAB>type on stdout, 'absent' as the type of a missing "
      "file");
  auto cmd = AddRunOptions(stat, Operation::kStat);
  stat->add_option("--at", cmd->url,
                   "The collection's HTTPS base URL (with --collection: a "
                   "folder on it)");
  return {stat, [cmd] { return cmd->Run(); }};
}

Command AddLinkCommand(CLI::App& app) {
  struct Link {
    std::string path;
    std::string base_url;
  };
  auto link = std::make_shared<Link>();
  CLI::App* cmd = app.add_subcommand(
      "link", "Print the URL a browser downloads PATH from (with ?download)");
  cmd->add_option("path", link->path, "Path of the file on the collection")
      ->required();
  cmd->add_option("--at", link->base_url, "The collection's HTTPS base URL")
      ->required();
  return {cmd, [link] {
            std::string path = link->path;
            while (!path.empty() && path.front() == '/') path.erase(0, 1);
            if (auto bad = ValidateRelativePath(path)) {
              std::fprintf(stderr, "ferry: error: path %s: %s\n",
                           link->path.c_str(), bad->c_str());
              return kExitUsage;
            }
            std::printf("%s\n", DownloadLink(link->base_url, path).c_str());
            return kExitOk;
          }};
}

}  // namespace ferry::cli
