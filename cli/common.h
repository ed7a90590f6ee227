// What every ferry command shares: exit codes, logging, tokens and the
// handling of SIGINT and SIGTERM.
#pragma once

#include <spdlog/logger.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "ferry/error.h"

namespace ferry::cli {

// Exit codes: 0 everything done, 1 something failed or the run stopped
// early, 2 bad usage or bad input (nothing was done). An interrupted run
// exits with 128 + the signal's number, as a shell reports it.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

inline constexpr char kTokenVariable[] = "FERRY_TOKEN";

// Flags that most commands take.
struct CommonFlags {
  std::string token_file;
  int verbosity = 0;
  bool quiet = false;
  bool progress = false;
  bool no_progress = false;
};

// Adds -v and -q to `command`.
void AddLogFlags(CLI::App* command, CommonFlags* flags);
// Adds --progress and --no-progress to `command`.
void AddProgressFlags(CLI::App* command, CommonFlags* flags);

// A logger on stderr whose level follows -v and -q.
std::shared_ptr<spdlog::logger> MakeLogger(const CommonFlags& flags);

// Reads a bearer token: the first line of `path`, without surrounding
// blanks. Like a client secret, it must be a file only its owner can read.
Status ReadTokenFile(const std::string& path, std::string* token);

// The bearer token: --token-file, else $FERRY_TOKEN, else none (with a
// warning). False, with the problem logged, when the file is unusable.
bool LoadToken(const CommonFlags& flags, spdlog::logger& log,
               std::string* token);

// Says on stderr, even with -q, that --insecure turned certificate checks
// off: a run must never pass for safe that is not.
void WarnInsecure();

// Catches SIGINT and SIGTERM; the returned flag is set by the first one.
const std::atomic<bool>* CatchInterrupts();
// 128 + the signal that interrupted the run, or 0 when none did.
int InterruptExitCode();

// The exit code for an engine error that refused a run.
int ExitCodeFor(const Error& error);
// Logs why the engine refused or ended a run and returns the exit code:
// the interrupt's when a signal caused it.
int Refused(spdlog::logger& log, const Error& error);

// A registered subcommand and what runs it once the command line parsed.
struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

}  // namespace ferry::cli
