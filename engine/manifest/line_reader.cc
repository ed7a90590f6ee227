#include "manifest/line_reader.h"

#include <cerrno>
#include <cstring>

namespace ferry {

LineReader::LineReader(size_t max_line)
    : max_line_(max_line),
      buffer_(new char[max_line + 1 + 64 * 1024]),
      capacity_(max_line + 1 + 64 * 1024) {}

LineReader::~LineReader() {
  if (file_ != nullptr) std::fclose(file_);
}

int LineReader::Open(const std::string& path) {
  file_ = std::fopen(path.c_str(), "rb");
  return file_ == nullptr ? errno : 0;
}

// Moves unread bytes to the front and reads more. False when nothing new
// could be read (end of file or error).
bool LineReader::Fill() {
  if (eof_) return false;
  std::memmove(buffer_.get(), buffer_.get() + begin_, end_ - begin_);
  end_ -= begin_;
  begin_ = 0;
  size_t n = std::fread(buffer_.get() + end_, 1, capacity_ - end_, file_);
  if (n == 0) {
    if (std::ferror(file_)) error_ = errno != 0 ? errno : EIO;
    eof_ = true;
    return false;
  }
  end_ += n;
  return true;
}

LineReader::Result LineReader::Next(std::string_view* line) {
  size_t scanned = 0;  // bytes after begin_ known to hold no newline
  for (;;) {
    const char* start = buffer_.get() + begin_;
    const void* nl =
        std::memchr(start + scanned, '\n', end_ - begin_ - scanned);
    if (nl != nullptr) {
      size_t length = static_cast<const char*>(nl) - start;
      begin_ += length + 1;
      if (length > max_line_) return Result::kTooLong;
      *line = std::string_view(start, length);
      return Result::kLine;
    }
    scanned = end_ - begin_;
    if (scanned > max_line_) {
      // Too long: drop what we have and skip to the next newline.
      begin_ = end_ = 0;
      while (Fill()) {
        const void* skip = std::memchr(buffer_.get(), '\n', end_);
        if (skip != nullptr) {
          begin_ = static_cast<const char*>(skip) - buffer_.get() + 1;
          return Result::kTooLong;
        }
        begin_ = end_ = 0;
      }
      return error_ != 0 ? Result::kError : Result::kTooLong;
    }
    if (!Fill()) {
      if (error_ != 0) return Result::kError;
      if (begin_ == end_) return Result::kEnd;
      // A last line without a newline.
      *line = std::string_view(buffer_.get() + begin_, end_ - begin_);
      begin_ = end_;
      return Result::kLine;
    }
  }
}

}  // namespace ferry
