// The ferry command line: parses options, builds a run's configuration,
// starts the engine and maps its outcome to an exit code (see common.h).
#include <CLI/CLI.hpp>
#include <csignal>
#include <vector>

#include "auth.h"
#include "commands.h"

int main(int argc, char** argv) {
  using namespace ferry::cli;
  // A peer that closes a connection must cost a transfer, not the process.
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{
      "ferry: moves many files between a local file system and "
      "HTTPS data collections, fast and verified"};
  app.set_version_flag("--version", "ferry 0.1.0");
  app.require_subcommand(1);

  std::vector<Command> commands = {
      AddGetCommand(app),    AddPutCommand(app),     AddRmCommand(app),
      AddStatCommand(app),   AddLinkCommand(app),    AddManifestCommand(app),
      AddVerifyCommand(app), AddResolveCommand(app), AddTokenCommand(app),
  };

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  for (const Command& command : commands) {
    if (command.app->parsed()) return command.run();
  }
  return kExitUsage;
}
