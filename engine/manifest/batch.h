// The lines of the Globus command line's batch files (`globus transfer
// --batch FILE`), read into manifest entries.
//
// A line is split into words like a shell would (see shell_split.h), and the
// words are read like the Globus command line reads them: exactly two
// positional paths, source then destination, and flags anywhere among them:
//   --recursive, -r          the source is a folder, moved with its contents
//   --no-recursive           the source is a file (the default)
//   --external-checksum V    also written --external-checksum=V
//   --                       every later word is a path, even "-r"
// A later flag overrides an earlier one. A lone "-" is a path.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/manifest.h"
#include "manifest/shell_split.h"

namespace ferry {

// The words of one batch line, read but not yet checked as paths. The views
// point into the words they were read from.
struct BatchWords {
  std::string_view source;
  std::string_view destination;
  bool recursive = false;
};

// Reads split words as a batch line: known flags anywhere, exactly two
// positional paths. Returns an error naming what is wrong; the paths are
// not checked.
std::optional<std::string> ReadBatchWords(const std::vector<std::string>& words,
                                          BatchWords* out);

// Reads an already split batch line into `entry`. Returns false for a line
// without words (blank or comment only), true with `entry` filled, or an
// error naming what is wrong with the line. `entry->dest` is always set.
ParsedLine ParseBatchWords(const ShellWords& split, ManifestEntry* entry);

// Splits and reads one batch line (without its newline; a trailing carriage
// return is dropped). `scratch` holds the words between calls so that their
// memory is reused.
ParsedLine ParseBatchLine(std::string_view line, ManifestEntry* entry,
                          ShellWords* scratch);

// Whether `word` is one of the flags a batch line accepts, in either form.
bool IsBatchFlag(std::string_view word);

}  // namespace ferry
