// The subcommands of ferry, one function each that registers it on the
// application. Each lives in a file of its own.
#pragma once

#include <CLI/CLI.hpp>

#include "common.h"

namespace ferry::cli {

Command AddGetCommand(CLI::App& app);
Command AddPutCommand(CLI::App& app);
Command AddRmCommand(CLI::App& app);
Command AddStatCommand(CLI::App& app);
Command AddLinkCommand(CLI::App& app);
Command AddManifestCommand(CLI::App& app);
Command AddVerifyCommand(CLI::App& app);

}  // namespace ferry::cli
