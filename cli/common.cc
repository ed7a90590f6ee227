#include "common.h"

#include <ferry/globus.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>

namespace ferry::cli {
namespace {

std::atomic<bool> interrupted{false};
std::atomic<int> interrupt_signal{0};

void OnInterrupt(int signal) {
  interrupt_signal.store(signal);
  interrupted.store(true);
  // A second signal ends the process at once.
  std::signal(signal, SIG_DFL);
}

}  // namespace

void AddLogFlags(CLI::App* command, CommonFlags* flags) {
  command->add_flag("-v,--verbose", flags->verbosity,
                    "More log lines (twice for debug, three times for every "
                    "request's header lines, credentials redacted)");
  command->add_flag("-q,--quiet", flags->quiet, "Errors only, no summary");
}

void AddProgressFlags(CLI::App* command, CommonFlags* flags) {
  command->add_flag("--progress", flags->progress,
                    "Show a progress line even when stderr is not a terminal");
  command->add_flag("--no-progress", flags->no_progress,
                    "Never show a progress line");
}

std::shared_ptr<spdlog::logger> MakeLogger(const CommonFlags& flags) {
  auto log = spdlog::get("ferry");
  if (!log) log = spdlog::stderr_color_mt("ferry");
  log->set_pattern("ferry: %^%l%$: %v");
  log->set_level(flags.quiet            ? spdlog::level::err
                 : flags.verbosity >= 2 ? spdlog::level::debug
                 : flags.verbosity == 1 ? spdlog::level::info
                                        : spdlog::level::warn);
  return log;
}

Status ReadTokenFile(const std::string& path, std::string* token) {
  return ReadPrivateFile(path, "token file", token);
}

bool LoadToken(const CommonFlags& flags, spdlog::logger& log,
               std::string* token) {
  if (!flags.token_file.empty()) {
    if (Status s = ReadTokenFile(flags.token_file, token); !s.ok()) {
      log.error("{}", s.error().message());
      return false;
    }
  } else if (const char* env = std::getenv(kTokenVariable); env && *env) {
    *token = env;
  } else {
    log.warn(
        "no token (--token-file or {}): requests go without one, as "
        "only a public collection allows",
        kTokenVariable);
  }
  return true;
}

void WarnInsecure() {
  std::fprintf(stderr,
               "ferry: warning: --insecure: TLS certificates (the "
               "collection's and the Globus APIs') are NOT checked; anyone "
               "on the path can read the token and secret and change the "
               "data\n");
}

const std::atomic<bool>* CatchInterrupts() {
  struct sigaction action {};
  action.sa_handler = OnInterrupt;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  return &interrupted;
}

int InterruptExitCode() {
  return interrupted.load() ? 128 + interrupt_signal.load() : 0;
}

int ExitCodeFor(const Error& error) {
  return error.code() == ErrorCode::kUsage ||
                 error.code() == ErrorCode::kManifest
             ? kExitUsage
             : kExitFailed;
}

int Refused(spdlog::logger& log, const Error& error) {
  log.error("{}", error.message());
  if (int code = InterruptExitCode(); code != 0) return code;
  return ExitCodeFor(error);
}

}  // namespace ferry::cli
