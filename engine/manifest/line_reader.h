// Reads a file line by line through one fixed buffer, so that a hostile
// input (a binary file, a line of gigabytes) cannot make memory grow.
#pragma once

#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

namespace ferry {

class LineReader {
 public:
  // Lines longer than `max_line` bytes are reported as too long and
  // skipped to their end.
  explicit LineReader(size_t max_line);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // Returns 0 on success, or an errno value.
  int Open(const std::string& path);

  enum class Result { kLine, kTooLong, kEnd, kError };
  // The view stays valid until the next call.
  Result Next(std::string_view* line);

  int error() const { return error_; }

 private:
  bool Fill();

  size_t max_line_;
  std::unique_ptr<char[]> buffer_;
  size_t capacity_;
  size_t begin_ = 0;  // first unread byte
  size_t end_ = 0;    // one past the last valid byte
  bool eof_ = false;
  int error_ = 0;
  std::FILE* file_ = nullptr;
};

}  // namespace ferry
