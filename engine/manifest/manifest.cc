#include "ferry/manifest.h"

#include <fmt/format.h>

#include <charconv>

#include "manifest/batch.h"
#include "manifest/line_reader.h"

namespace ferry {
namespace {

Error ManifestError(const std::string& path, uint64_t line,
                    const std::string& what) {
  return Error(ErrorCode::kManifest, RetryClass::kPermanent,
               fmt::format("{}:{}: {}", path, line, what));
}

std::optional<uint64_t> ParseSize(std::string_view text) {
  uint64_t value = 0;
  auto [end, ec] =
      std::from_chars(text.data(), text.data() + text.size(), value, 10);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return std::nullopt;
  }
  return value;
}

}  // namespace

std::optional<std::string> ValidateRelativePath(std::string_view path) {
  if (path.empty()) return "empty path";
  if (path.front() == '/') return "absolute path (must be relative)";
  if (path.size() > 4096) return "path longer than 4096 bytes";
  for (unsigned char c : path) {
    if (c < 0x20 || c == 0x7f) {
      return fmt::format("control byte 0x{:02x} in path", c);
    }
  }
  size_t start = 0;
  for (;;) {
    size_t slash = path.find('/', start);
    std::string_view segment = path.substr(
        start, slash == std::string_view::npos ? slash : slash - start);
    if (segment.empty()) return "empty path segment ('//' or trailing '/')";
    if (segment == "." || segment == "..") {
      return fmt::format("'{}' segment in path", segment);
    }
    if (segment.size() > 255) return "path segment longer than 255 bytes";
    if (slash == std::string_view::npos) return std::nullopt;
    start = slash + 1;
  }
}

size_t FindInvalidUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    if (lead < 0x80) {
      ++i;
      continue;
    }
    // The length of the sequence a lead byte starts, and the range its
    // second byte must fall in (RFC 3629, table 3-7 of Unicode): the
    // narrower ranges exclude overlong forms, surrogates and code points
    // above U+10FFFF.
    size_t length = 0;
    unsigned char low = 0x80;
    unsigned char high = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      if (lead == 0xE0) low = 0xA0;
      if (lead == 0xED) high = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      if (lead == 0xF0) low = 0x90;
      if (lead == 0xF4) high = 0x8F;
    } else {
      return i;
    }
    if (text.size() - i < length) return i;
    for (size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if (next < (k == 1 ? low : 0x80) || next > (k == 1 ? high : 0xBF)) {
        return i;
      }
    }
    i += length;
  }
  return std::string_view::npos;
}

std::optional<std::string> CheckUtf8(std::string_view line) {
  size_t bad = FindInvalidUtf8(line);
  if (bad == std::string_view::npos) return std::nullopt;
  return fmt::format("invalid UTF-8 at byte offset {} of the line (0x{:02x})",
                     bad, static_cast<unsigned char>(line[bad]));
}

ParsedLine ParseManifestLine(std::string_view line, ManifestEntry* entry) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.empty() || line.front() == '#') return {};
  if (line.find_first_not_of(" \t") == std::string_view::npos) return {};
  if (auto bad = CheckUtf8(line)) return {false, *bad};

  std::string_view columns[3];
  size_t count = 0;
  size_t start = 0;
  for (;;) {
    size_t tab = line.find('\t', start);
    if (count == 3) return {false, "more than three tab-separated columns"};
    columns[count++] =
        line.substr(start, tab == std::string_view::npos ? tab : tab - start);
    if (tab == std::string_view::npos) break;
    start = tab + 1;
  }

  if (auto bad = ValidateRelativePath(columns[0])) return {false, *bad};
  entry->path.assign(columns[0]);
  entry->dest.clear();
  entry->recursive = false;
  entry->size.reset();
  entry->xxh128.reset();
  if (count >= 2 && !columns[1].empty()) {
    entry->size = ParseSize(columns[1]);
    if (!entry->size) {
      return {false, fmt::format("size {:?} is not a byte count", columns[1])};
    }
  }
  if (count == 3 && !columns[2].empty()) {
    entry->xxh128 = Digest128::FromHex(columns[2]);
    if (!entry->xxh128) {
      return {false,
              fmt::format("xxh128 {:?} is not 32 hex digits", columns[2])};
    }
  }
  return {true, std::nullopt};
}

ManifestReader::ManifestReader() = default;
ManifestReader::~ManifestReader() = default;

Status ManifestReader::Open(const std::string& path, ManifestFormat format) {
  if (format == ManifestFormat::kAuto) {
    return Error(ErrorCode::kInternal, RetryClass::kPermanent,
                 "a manifest is read in a chosen format, not kAuto");
  }
  path_ = path;
  format_ = format;
  lines_ = std::make_unique<LineReader>(kMaxManifestLine);
  words_ = std::make_unique<ShellWords>();
  if (int err = lines_->Open(path); err != 0) {
    return ErrorFromErrno(err, "cannot open manifest " + path);
  }
  return {};
}

bool ManifestReader::Next(ManifestEntry* entry) {
  std::string_view line;
  for (;;) {
    switch (lines_->Next(&line)) {
      case LineReader::Result::kEnd:
        return false;
      case LineReader::Result::kError:
        error_ = ErrorFromErrno(lines_->error(), "cannot read " + path_);
        return false;
      case LineReader::Result::kTooLong:
        ++line_number_;
        error_ = ManifestError(
            path_, line_number_,
            fmt::format("line longer than {} bytes", kMaxManifestLine));
        return false;
      case LineReader::Result::kLine:
        break;
    }
    ++line_number_;
    // Editors on some systems start a UTF-8 file with a byte order mark.
    if (line_number_ == 1 && line.substr(0, 3) == "\xEF\xBB\xBF") {
      line.remove_prefix(3);
    }
    ParsedLine parsed = format_ == ManifestFormat::kGlobusBatch
                            ? ParseBatchLine(line, entry, words_.get())
                            : ParseManifestLine(line, entry);
    if (parsed.error) {
      error_ = ManifestError(path_, line_number_, *parsed.error);
      return false;
    }
    if (parsed.has_entry) {
      entry->line = line_number_;
      return true;
    }
  }
}

Status CheckManifest(const std::string& path, ManifestFormat format,
                     ManifestCheck* check, size_t max_reported) {
  *check = {};
  ManifestReader reader;
  if (Status s = reader.Open(path, format); !s.ok()) return s;
  std::string report;
  ManifestEntry entry;
  for (;;) {
    if (reader.Next(&entry)) {
      ++check->entries;
      if (entry.recursive && check->recursive++ == 0) {
        check->first_recursive_line = entry.line;
      }
      continue;
    }
    if (!reader.error()) break;
    if (reader.error()->code() != ErrorCode::kManifest) return *reader.error();
    if (check->bad_lines++ < max_reported) {
      report += "\n  " + reader.error()->message();
    }
    reader.ClearError();
  }
  if (check->bad_lines == 0) return {};
  if (check->bad_lines > max_reported) {
    report +=
        fmt::format("\n  ... and {} more", check->bad_lines - max_reported);
  }
  return Error(ErrorCode::kManifest, RetryClass::kPermanent,
               fmt::format("{} bad line(s) in manifest {}:{}", check->bad_lines,
                           path, report));
}

}  // namespace ferry
