#include "manifest/batch.h"

#include <fmt/format.h>

namespace ferry {
namespace {

constexpr std::string_view kChecksumFlag = "--external-checksum";

// Checks a batch path and writes it in the entry's form: one leading '/'
// for an absolute path, no trailing '/' (folder notation).
std::optional<std::string> NormalizeBatchPath(std::string_view path,
                                              std::string* out) {
  if (path.empty()) return "empty path";
  bool absolute = path.front() == '/';
  std::string_view rest = absolute ? path.substr(1) : path;
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (absolute && rest.empty()) return "the root '/' itself is not a path";
  if (absolute && rest.front() == '/') return "more than one leading '/'";
  if (auto bad = ValidateRelativePath(rest)) return bad;
  out->assign(absolute ? "/" : "");
  out->append(rest);
  return std::nullopt;
}

// The flags of one line, read as they are met.
struct FlagState {
  bool recursive = false;
  bool only_paths = false;  // after "--"
};

// Reads the flag at words[*i], advancing *i past a separate value. Returns
// an error for an unknown flag or a misused one.
std::optional<std::string> ReadFlag(const std::vector<std::string>& words,
                                    size_t* i, FlagState* state) {
  std::string_view word = words[*i];
  if (word == "--") {
    state->only_paths = true;
    return std::nullopt;
  }
  // Only long flags carry a value after '='.
  size_t equals =
      word.starts_with("--") ? word.find('=') : std::string_view::npos;
  std::string_view name = word.substr(0, equals);
  bool has_value = equals != std::string_view::npos;
  if (name == "--recursive" || name == "-r" || name == "--no-recursive") {
    if (has_value) return fmt::format("flag {} takes no value", name);
    state->recursive = name != "--no-recursive";
    return std::nullopt;
  }
  if (name == kChecksumFlag) {
    // The Globus command line takes the next word as the value, whatever it
    // looks like.
    if (!has_value && ++*i == words.size()) {
      return fmt::format("flag {} needs a value", kChecksumFlag);
    }
    // The value is an MD5 for the Globus service to compare with its own.
    // ferry checks XXH3-128 digests only, so the value is accepted and
    // dropped rather than refusing users' existing batch files.
    return std::nullopt;
  }
  return fmt::format(
      "unknown flag '{}' (a batch line takes --recursive, -r, "
      "--no-recursive, --external-checksum)",
      word);
}

std::string PathCountError(size_t count) {
  if (count == 0) {
    return "no path: a batch line needs a source and a destination";
  }
  if (count == 1) {
    return "one path only: a batch line needs a source and a destination";
  }
  return fmt::format(
      "{} paths: a batch line needs exactly a source and a destination "
      "(quote paths that hold spaces)",
      count);
}

}  // namespace

bool IsBatchFlag(std::string_view word) {
  std::string_view name =
      word.starts_with("--") ? word.substr(0, word.find('=')) : word;
  return name == "--recursive" || name == "-r" || name == "--no-recursive" ||
         name == kChecksumFlag;
}

std::optional<std::string> ReadBatchWords(const std::vector<std::string>& words,
                                          BatchWords* out) {
  FlagState flags;
  std::string_view paths[2];
  size_t count = 0;
  for (size_t i = 0; i < words.size(); ++i) {
    // As on the Globus command line, a lone "-" is a path, not a flag.
    bool is_flag =
        !flags.only_paths && words[i].size() > 1 && words[i].front() == '-';
    if (is_flag) {
      if (auto bad = ReadFlag(words, &i, &flags)) return bad;
      continue;
    }
    if (count < 2) paths[count] = words[i];
    ++count;
  }
  if (count != 2) return PathCountError(count);
  out->source = paths[0];
  out->destination = paths[1];
  out->recursive = flags.recursive;
  return std::nullopt;
}

ParsedLine ParseBatchWords(const ShellWords& split, ManifestEntry* entry) {
  if (split.error) return {false, split.error};
  if (split.words.empty()) return {};

  BatchWords line;
  if (auto bad = ReadBatchWords(split.words, &line)) return {false, *bad};
  if (auto bad = NormalizeBatchPath(line.source, &entry->path)) {
    return {false, "source: " + *bad};
  }
  if (auto bad = NormalizeBatchPath(line.destination, &entry->dest)) {
    return {false, "destination: " + *bad};
  }
  entry->size.reset();
  entry->xxh128.reset();
  entry->recursive = line.recursive;
  return {true, std::nullopt};
}

ParsedLine ParseBatchLine(std::string_view line, ManifestEntry* entry,
                          ShellWords* scratch) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  // A comment line may hold any bytes; a line with paths must be text.
  size_t first = line.find_first_not_of(" \t");
  if (first != std::string_view::npos && line[first] != '#') {
    if (auto bad = CheckUtf8(line)) return {false, *bad};
  }
  SplitShellWords(line, scratch);
  return ParseBatchWords(*scratch, entry);
}

}  // namespace ferry
