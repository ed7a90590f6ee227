// Manifests: the list of files a run moves. One entry per line, read as a
// stream so that memory does not grow with the manifest's length.
//
// A line is either a relative path, or tab-separated columns
//   path <TAB> size [<TAB> xxh128]
// where size is a decimal byte count (may be empty: unknown) and xxh128 is
// 32 hex digits as `xxhsum -H2` prints them. Blank lines and lines whose
// first character is '#' are skipped. A trailing carriage return is dropped.
// A line that holds an entry must be UTF-8 (CheckUtf8); comments may not be.
//
// A manifest can also be a batch file of the Globus command line: on each
// line a source and a destination path, split like a shell would, with
// optional flags (--recursive, -r, --no-recursive, --external-checksum V).
// manifest/batch.h and manifest/shell_split.h give the exact rules.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/digest.h"
#include "ferry/error.h"

namespace ferry {

class LineReader;
struct ShellWords;

// One entry of a manifest. Paths are relative to the run's source and
// destination (the collection's base URL, the local folder). Only batch
// files give a destination that differs from the source, or a path that
// starts with '/': such a path is taken from the root (the collection's
// root, the local file system's root) instead of the run's folders.
struct ManifestEntry {
  std::string path;  // the source, validated; no trailing '/'
  std::string dest;  // the destination; empty: the same as path
  std::optional<uint64_t> size;
  std::optional<Digest128> xxh128;
  bool recursive = false;  // batch files' --recursive: path is a folder
  uint64_t line = 0;       // 1-based line number in the manifest

  const std::string& destination() const { return dest.empty() ? path : dest; }
};

// The formats a manifest can have.
enum class ManifestFormat {
  kAuto,         // detect it (DetectManifestFormat)
  kFerry,        // ferry's own: path [<TAB>size [<TAB>xxh128]]
  kGlobusBatch,  // the Globus command line's --batch files
};

// Lines longer than this are refused: no real path is this long, and a
// reader must not buffer an unbounded line.
inline constexpr size_t kMaxManifestLine = 64 * 1024;

// Checks that `path` is a safe relative path: not empty, not absolute, no
// empty, "." or ".." segments, no control bytes, segments of at most 255
// bytes. Returns a reason when it is not, nullopt when it is.
std::optional<std::string> ValidateRelativePath(std::string_view path);

// The offset of the first byte of `text` that does not start a well-formed
// UTF-8 sequence (overlong forms, surrogates and code points above
// U+10FFFF are not well-formed), or npos when all of it is well-formed.
size_t FindInvalidUtf8(std::string_view text);

// A line that holds paths must be UTF-8: a collection's paths are, and a
// byte of another encoding would name another file there. Returns a reason
// naming the offending byte's offset in the line, nullopt when it is text.
std::optional<std::string> CheckUtf8(std::string_view line);

// Parses one manifest line (without its newline). Returns false for a line
// that holds no entry (blank or comment), true with `entry` filled, or an
// error describing what is wrong with the line.
struct ParsedLine {
  bool has_entry = false;
  std::optional<std::string> error;
};
ParsedLine ParseManifestLine(std::string_view line, ManifestEntry* entry);

// Reads a manifest file entry by entry.
class ManifestReader {
 public:
  ManifestReader();
  ~ManifestReader();

  // Opens `path`, to be read in `format` (not kAuto); "-" is not supported
  // because a run reads the manifest twice (once to validate every line,
  // once to plan).
  [[nodiscard]] Status Open(const std::string& path,
                            ManifestFormat format = ManifestFormat::kFerry);

  // Fills `entry` with the next entry. Returns false at the end of the
  // manifest or on a bad line; then error() says which.
  bool Next(ManifestEntry* entry);

  // The error that stopped Next(), if any. After a bad line (kManifest),
  // ClearError() lets reading go on with the following line.
  const std::optional<Error>& error() const { return error_; }
  void ClearError() { error_.reset(); }

 private:
  std::string path_;
  ManifestFormat format_ = ManifestFormat::kFerry;
  std::unique_ptr<LineReader> lines_;
  std::unique_ptr<ShellWords> words_;  // batch files: reused for each line
  uint64_t line_number_ = 0;
  std::optional<Error> error_;
};

// Reads the whole manifest once and reports every bad line (up to
// `max_reported` of them in the message), so that a run refuses to start
// rather than failing half way through. Counts entries on success.
struct ManifestCheck {
  uint64_t entries = 0;
  uint64_t bad_lines = 0;
  uint64_t recursive = 0;             // entries that name a whole folder
  uint64_t first_recursive_line = 0;  // line of the first of them; 0: none
};
[[nodiscard]] Status CheckManifest(const std::string& path,
                                   ManifestFormat format, ManifestCheck* check,
                                   size_t max_reported = 20);

// Guesses the format of the manifest at `path` from its first 1000 entry
// lines, and says why, so that the run can announce what it chose.
//
// Blank lines and lines whose first non-blank byte is '#' are left out.
// The first rule that applies decides:
//  1. no entry line: ferry's format ("no entries");
//  2. a tab on any line: ferry's format, whose columns are tab-separated;
//  3. a line holds a batch flag as a word of its own (--recursive, -r,
//     --no-recursive, --external-checksum[=V]): a batch file;
//  4. a line uses shell quoting (quotes or backslashes) and splits into
//     exactly a source and a destination: a batch file;
//  5. every line splits into exactly two paths, and no line has a '#'
//     glued to a word (which a shell reads as a comment, but which is
//     ordinary in file names): a batch file;
//  6. otherwise ferry's format, one path per line.
// A ferry manifest whose paths hold spaces therefore reads as a batch file
// only when every one of its lines holds exactly one run of spaces, such as
// "run 1/a.dat" on each line; nothing in the text can tell those apart, so
// the run announces the guess and its reason, and --format overrides it.
// The reason is a short phrase, such as "tab-separated columns".
struct FormatGuess {
  ManifestFormat format = ManifestFormat::kFerry;
  std::string reason;
};
[[nodiscard]] Status DetectManifestFormat(const std::string& path,
                                          FormatGuess* guess);

}  // namespace ferry
