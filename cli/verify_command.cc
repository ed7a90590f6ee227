// ferry verify: checks a local folder against a manifest.
#include <unistd.h>

#include <cstdio>

#include "commands.h"
#include "ferry/tree.h"

namespace ferry::cli {
namespace {

struct VerifyCommand {
  VerifyOptions options;
  CommonFlags flags;

  int Run() {
    auto log = MakeLogger(flags);
    options.logger = log;
    options.progress = !flags.quiet && !flags.no_progress &&
                       (flags.progress || ::isatty(STDERR_FILENO) == 1);
    options.interrupt = CatchInterrupts();
    options.on_difference = [](const TreeDifference& d) {
      std::string line = d.ToLine() + "\n";
      std::fwrite(line.data(), 1, line.size(), stdout);
    };
    VerifySummary summary;
    Status status = VerifyManifest(options, &summary);
    std::fflush(stdout);
    if (!status.ok()) return Refused(*log, status.error());
    if (!flags.quiet) std::fprintf(stderr, "%s\n", summary.ToText().c_str());
    return summary.differences == 0 ? kExitOk : kExitFailed;
  }
};

}  // namespace

Command AddVerifyCommand(CLI::App& app) {
  auto cmd = std::make_shared<VerifyCommand>();
  VerifyOptions& o = cmd->options;
  CLI::App* verify = app.add_subcommand(
      "verify", "Check the files of a local folder against a manifest");
  verify->footer(
      "Every file the manifest names must be a regular file below DIR; its "
      "size and\nxxh128 are compared where the manifest gives them. Each "
      "difference is one line\non stdout, in manifest order:\n"
      "  missing<TAB>path\n"
      "  notfile<TAB>path<TAB>regular file<TAB>what it is\n"
      "  unreadable<TAB>path<TAB>reason\n"
      "  size<TAB>path<TAB>expected<TAB>actual\n"
      "  checksum<TAB>path<TAB>expected<TAB>actual\n"
      "A summary goes to stderr unless -q.\nExit status: 0 every file "
      "matches, 1 some differ, 2 bad usage or bad manifest\nlines (named on "
      "stderr; no file is read then).\n");
  verify
      ->add_option("manifest", o.manifest,
                   "Manifest: path[<TAB>size[<TAB>xxh128]] per line")
      ->required();
  verify->add_option("--in", o.dir, "The folder the paths are relative to")
      ->option_text("DIR")
      ->required();
  verify
      ->add_option("--threads", o.threads,
                   "Hashing threads (default: one per core)")
      ->check(CLI::Range(1, 1024));
  AddProgressFlags(verify, &cmd->flags);
  AddLogFlags(verify, &cmd->flags);
  return {verify, [cmd] { return cmd->Run(); }};
}

}  // namespace ferry::cli
