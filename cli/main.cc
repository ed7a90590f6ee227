// The ferry command line: parses options, builds a run's configuration,
// starts the engine and maps its outcome to an exit code.
//
// Exit codes: 0 every file arrived, 1 some failed or the run stopped early,
// 2 bad usage or a bad manifest (nothing was transferred).
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "ferry/get.h"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr char kTokenVariable[] = "FERRY_TOKEN";

// Set by the first SIGINT or SIGTERM; the engine polls it.
std::atomic<bool> interrupted{false};
std::atomic<int> interrupt_signal{0};

void OnInterrupt(int signal) {
  interrupt_signal.store(signal);
  interrupted.store(true);
  // A second signal ends the process at once.
  std::signal(signal, SIG_DFL);
}

void CatchInterrupts() {
  struct sigaction action {};
  action.sa_handler = OnInterrupt;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

// Reads a token from its file: the first line, without surrounding blanks.
bool ReadToken(const std::string& path, std::string* token,
               std::string* problem) {
  std::ifstream in(path);
  if (!in) {
    *problem = "cannot read token file " + path;
    return false;
  }
  std::getline(in, *token);
  auto first = token->find_first_not_of(" \t\r\n");
  auto last = token->find_last_not_of(" \t\r\n");
  *token =
      first == std::string::npos ? "" : token->substr(first, last - first + 1);
  if (token->empty()) {
    *problem = "token file " + path + " is empty";
    return false;
  }
  return true;
}

std::shared_ptr<spdlog::logger> MakeLogger(int verbosity, bool quiet) {
  auto log = spdlog::stderr_color_mt("ferry");
  log->set_pattern("ferry: %^%l%$: %v");
  log->set_level(quiet            ? spdlog::level::err
                 : verbosity >= 2 ? spdlog::level::debug
                 : verbosity == 1 ? spdlog::level::info
                                  : spdlog::level::warn);
  return log;
}

struct CommonFlags {
  std::string token_file;
  int verbosity = 0;
  bool quiet = false;
};

int RunGetCommand(ferry::GetOptions& options, const CommonFlags& flags,
                  bool progress, bool no_progress) {
  auto log = MakeLogger(flags.verbosity, flags.quiet);
  options.logger = log;
  if (!flags.token_file.empty()) {
    std::string problem;
    if (!ReadToken(flags.token_file, &options.token, &problem)) {
      log->error("{}", problem);
      return kExitUsage;
    }
  } else if (const char* env = std::getenv(kTokenVariable); env && *env) {
    options.token = env;
  } else {
    log->warn(
        "no token (--token-file or {}): requests go without one, as "
        "only a public collection allows",
        kTokenVariable);
  }
  options.progress = no_progress || flags.quiet ? ferry::ProgressMode::kNever
                     : progress                 ? ferry::ProgressMode::kAlways
                                                : ferry::ProgressMode::kAuto;

  options.interrupt = &interrupted;
  CatchInterrupts();
  ferry::RunSummary summary;
  ferry::Status status = ferry::RunGet(options, &summary);
  if (!status.ok()) {
    log->error("{}", status.error().message());
    auto code = status.error().code();
    return code == ferry::ErrorCode::kUsage ||
                   code == ferry::ErrorCode::kManifest
               ? kExitUsage
               : kExitFailed;
  }
  if (!flags.quiet) std::fprintf(stderr, "%s\n", summary.ToText().c_str());
  // Interrupted: the status a shell gives a process the signal ended.
  if (interrupted.load()) return 128 + interrupt_signal.load();
  return summary.all_ok() ? kExitOk : kExitFailed;
}

}  // namespace

int main(int argc, char** argv) {
  // A peer that closes a connection must cost a transfer, not the process.
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{
      "ferry: moves many files between a local file system and "
      "HTTPS data collections, fast and verified"};
  app.set_version_flag("--version", "ferry 0.1.0");
  app.require_subcommand(1);

  CommonFlags flags;
  ferry::GetOptions options;
  bool progress = false;
  bool no_progress = false;

  CLI::App* get = app.add_subcommand(
      "get", "Download every file named in MANIFEST from a collection");
  get->add_option("manifest", options.manifest,
                  "Manifest: one relative path per line, or "
                  "path<TAB>size<TAB>xxh128")
      ->required();
  get->add_option("--from", options.base_url, "The collection's HTTPS base URL")
      ->required();
  get->add_option("--to", options.dest_dir, "Local destination folder")
      ->required();
  get->add_option("--token-file", flags.token_file,
                  "File holding the bearer token (else $FERRY_TOKEN)");
  get->add_option("--ca-file", options.ca_file,
                  "CA certificates for the collection's TLS certificate");
  get->add_option("--report", options.report,
                  "Write one JSON line per file to this file");
  get->add_option("--streams", options.streams, "Transfers in flight at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  get->add_option("--connections", options.connections,
                  "Connections to the collection, at most")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  get->add_flag("--http1.1", options.http1,
                "Use HTTP/1.1: one transfer per connection");
  get->add_option("--attempts", options.retry.max_attempts,
                  "Attempts per file before it counts as failed")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  get->add_flag("--progress", progress,
                "Show a progress line even when stderr is not a terminal");
  get->add_flag("--no-progress", no_progress, "Never show a progress line");
  get->add_flag("-v,--verbose", flags.verbosity,
                "More log lines (twice for debug)");
  get->add_flag("-q,--quiet", flags.quiet, "Errors only, no summary");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  if (get->parsed())
    return RunGetCommand(options, flags, progress, no_progress);
  return kExitUsage;
}
