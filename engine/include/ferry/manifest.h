// Manifests: the list of files a run moves. One entry per line, read as a
// stream so that memory does not grow with the manifest's length.
//
// A line is either a relative path, or tab-separated columns
//   path <TAB> size [<TAB> xxh128]
// where size is a decimal byte count (may be empty: unknown) and xxh128 is
// 32 hex digits as `xxhsum -H2` prints them. Blank lines and lines whose
// first character is '#' are skipped. A trailing carriage return is dropped.
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
  uint64_t line_number_ = 0;
  std::optional<Error> error_;
};

// Reads the whole manifest once and reports every bad line (up to
// `max_reported` of them in the message), so that a run refuses to start
// rather than failing half way through. Counts entries on success.
struct ManifestCheck {
  uint64_t entries = 0;
  uint64_t bad_lines = 0;
};
[[nodiscard]] Status CheckManifest(const std::string& path,
                                   ManifestFormat format,
                                   ManifestCheck* check,
                                   size_t max_reported = 20);

// Guesses the format of the manifest at `path` from its first entries,
// and says why, so that the run can announce what it chose.
struct FormatGuess {
  ManifestFormat format = ManifestFormat::kFerry;
  std::string reason;
};
[[nodiscard]] Status DetectManifestFormat(const std::string& path,
                                          FormatGuess* guess);

}  // namespace ferry
