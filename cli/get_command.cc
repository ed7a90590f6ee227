// ferry get: downloads the files a manifest names.
#include <cstdio>

#include "commands.h"
#include "ferry/get.h"

namespace ferry::cli {
namespace {

struct GetCommand {
  GetOptions options;
  CommonFlags flags;

  int Run() {
    auto log = MakeLogger(flags);
    options.logger = log;
    if (!LoadToken(flags, *log, &options.token)) return kExitUsage;
    options.progress = flags.no_progress || flags.quiet ? ProgressMode::kNever
                       : flags.progress ? ProgressMode::kAlways
                                        : ProgressMode::kAuto;
    options.interrupt = CatchInterrupts();
    RunSummary summary;
    Status status = RunGet(options, &summary);
    if (!status.ok()) {
      log->error("{}", status.error().message());
      return ExitCodeFor(status.error());
    }
    if (!flags.quiet) std::fprintf(stderr, "%s\n", summary.ToText().c_str());
    if (int code = InterruptExitCode(); code != 0) return code;
    return summary.all_ok() ? kExitOk : kExitFailed;
  }
};

}  // namespace

Command AddGetCommand(CLI::App& app) {
  auto cmd = std::make_shared<GetCommand>();
  GetOptions& o = cmd->options;
  CLI::App* get = app.add_subcommand(
      "get", "Download every file named in MANIFEST from a collection");
  get->add_option("manifest", o.manifest,
                  "Manifest: one relative path per line, or "
                  "path<TAB>size<TAB>xxh128")
      ->required();
  get->add_option("--from", o.base_url, "The collection's HTTPS base URL")
      ->required();
  get->add_option("--to", o.dest_dir, "Local destination folder")->required();
  get->add_option("--token-file", cmd->flags.token_file,
                  "File holding the bearer token (else $FERRY_TOKEN)");
  get->add_option("--ca-file", o.ca_file,
                  "CA certificates for the collection's TLS certificate");
  get->add_option("--report", o.report,
                  "Write one JSON line per file to this file");
  get->add_option("--streams", o.streams, "Transfers in flight at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  get->add_option("--connections", o.connections,
                  "Connections to the collection, at most")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  get->add_flag("--http1.1", o.http1,
                "Use HTTP/1.1: one transfer per connection");
  get->add_option("--attempts", o.retry.max_attempts,
                  "Attempts per file before it counts as failed")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  get->add_flag("--progress", cmd->flags.progress,
                "Show a progress line even when stderr is not a terminal");
  get->add_flag("--no-progress", cmd->flags.no_progress,
                "Never show a progress line");
  AddLogFlags(get, &cmd->flags);
  return {get, [cmd] { return cmd->Run(); }};
}

}  // namespace ferry::cli
