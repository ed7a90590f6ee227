// Lists the regular files below a folder, one at a time, in the order of
// their relative paths' bytes, holding only the listings of the folders on
// the current path in memory.
//
// Folders are read with openat relative to their parent's descriptor, so a
// folder's path is resolved once however deep the tree is. Symbolic links
// are skipped (logged at info) unless links are followed; fifos, sockets
// and devices are skipped with a warning, and so are names that a manifest
// cannot hold. Folders that cannot be read are logged as errors and
// counted; the walk goes on with the rest.
//
// Not thread-safe.
#pragma once

#include <dirent.h>
#include <spdlog/logger.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/error.h"

namespace ferry {

// Why a relative path cannot be a line of a ferry manifest that reads
// back as the same path, or nullopt when it can.
std::optional<std::string> ManifestCannotHold(std::string_view path);

// A word for a file type other than a regular file (S_IFDIR, S_IFIFO...).
const char* FileTypeName(mode_t type);

class TreeWalker {
 public:
  struct Options {
    bool follow_symlinks = false;
    // Names in one folder (given by device and inode) that are not
    // listed: the manifest being written and its temporary file.
    dev_t exclude_dev = 0;
    ino_t exclude_ino = 0;
    std::vector<std::string> exclude_names;
  };

  TreeWalker(std::string root, Options options, spdlog::logger& log);
  ~TreeWalker();
  TreeWalker(const TreeWalker&) = delete;
  TreeWalker& operator=(const TreeWalker&) = delete;

  // Opens the root folder; an error when it is not a folder that can be
  // read (kUsage when it is not a folder at all).
  [[nodiscard]] Status Open();

  // The next file's path relative to the root; false when there is none.
  bool Next(std::string* rel);

  uint64_t skipped() const { return skipped_; }
  uint64_t errors() const { return errors_; }

 private:
  enum class Kind { kFile, kFolder };
  struct Child {
    std::string key;  // the name, with a '/' appended for a folder
    Kind kind;
  };
  // A folder on the current path, with its sorted listing.
  struct Level {
    DIR* dir = nullptr;
    std::string prefix;  // its path relative to the root, with a '/'
    dev_t dev = 0;
    ino_t ino = 0;
    std::vector<Child> children;
    size_t next = 0;
  };

  // Opens `name` below the deepest level as a new level; false (logged)
  // when it cannot be read or closes a loop of links.
  bool Push(int parent_fd, const std::string& name, const std::string& rel);
  void Pop();
  // Reads and sorts a level's listing.
  void List(Level* level);
  // The kind of an entry, or nullopt when it is skipped (and logged).
  std::optional<Kind> Classify(Level* level, const dirent* entry,
                               const std::string& rel);
  bool Excluded(const Level& level, std::string_view name) const;

  std::string root_;
  Options options_;
  spdlog::logger& log_;
  std::vector<Level> stack_;
  uint64_t skipped_ = 0;
  uint64_t errors_ = 0;
};

}  // namespace ferry
