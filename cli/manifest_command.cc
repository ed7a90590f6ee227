// ferry manifest: lists a local tree as a manifest with sizes and digests.
#include <unistd.h>

#include <cstdio>

#include "commands.h"
#include "ferry/tree.h"

namespace ferry::cli {
namespace {

struct ManifestCommand {
  TreeManifestOptions options;
  CommonFlags flags;

  int Run() {
    auto log = MakeLogger(flags);
    options.logger = log;
    options.progress = !flags.quiet && !flags.no_progress &&
                       (flags.progress || ::isatty(STDERR_FILENO) == 1);
    options.interrupt = CatchInterrupts();
    TreeManifestSummary summary;
    Status status = WriteTreeManifest(options, &summary);
    if (!status.ok()) return Refused(*log, status.error());
    if (!flags.quiet) std::fprintf(stderr, "%s\n", summary.ToText().c_str());
    return summary.errors == 0 ? kExitOk : kExitFailed;
  }
};

}  // namespace

Command AddManifestCommand(CLI::App& app) {
  auto cmd = std::make_shared<ManifestCommand>();
  TreeManifestOptions& o = cmd->options;
  CLI::App* manifest = app.add_subcommand(
      "manifest",
      "Write the manifest of a local folder: one line per regular file, "
      "path<TAB>size<TAB>xxh128, sorted by path");
  manifest->footer(
      "Paths are relative to DIR, '/'-separated and sorted by their bytes; "
      "xxh128 is\nthe XXH3-128 digest as `xxhsum -H2` prints it. Symbolic "
      "links are skipped\nunless --follow-symlinks; fifos, sockets, devices "
      "and names a manifest cannot\nhold (control bytes such as tab or "
      "newline) are skipped with a warning.\nFiles or folders that cannot be "
      "read are named on stderr and left out; every\nother file is still "
      "listed and the manifest still written, and ferry exits 1.\nExit "
      "status: 0 every file listed, 1 some could not be read or the "
      "manifest\ncould not be written, 2 bad usage.\n");
  manifest->add_option("dir", o.dir, "The folder to list")->required();
  manifest
      ->add_option("-o,--output", o.output,
                   "Write the manifest to FILE (under a temporary name beside "
                   "it, renamed "
                   "when complete; not listed itself) instead of stdout")
      ->option_text("FILE");
  manifest->add_flag("--follow-symlinks", o.follow_symlinks,
                     "List the files that symbolic links point to");
  manifest
      ->add_option("--threads", o.threads,
                   "Hashing threads (default: one per core)")
      ->check(CLI::Range(1, 1024));
  AddProgressFlags(manifest, &cmd->flags);
  AddLogFlags(manifest, &cmd->flags);
  return {manifest, [cmd] { return cmd->Run(); }};
}

}  // namespace ferry::cli
