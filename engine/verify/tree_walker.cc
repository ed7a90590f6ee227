#include "verify/tree_walker.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "ferry/manifest.h"
#include "ferry/own_files.h"

namespace ferry {
namespace {

// What a file of this type is called in a log line.

mode_t TypeFromDirent(unsigned char d_type) {
  switch (d_type) {
    case DT_REG:
      return S_IFREG;
    case DT_DIR:
      return S_IFDIR;
    case DT_LNK:
      return S_IFLNK;
    case DT_FIFO:
      return S_IFIFO;
    case DT_SOCK:
      return S_IFSOCK;
    case DT_CHR:
      return S_IFCHR;
    case DT_BLK:
      return S_IFBLK;
    default:
      return 0;  // the file system does not say: ask stat
  }
}

}  // namespace

const char* FileTypeName(mode_t type) {
  switch (type) {
    case S_IFDIR:
      return "folder";
    case S_IFIFO:
      return "fifo";
    case S_IFSOCK:
      return "socket";
    case S_IFCHR:
      return "character device";
    case S_IFBLK:
      return "block device";
    default:
      return "special file";
  }
}

std::optional<std::string> ManifestCannotHold(std::string_view path) {
  if (auto bad = ValidateRelativePath(path)) return bad;
  // A reader drops a byte order mark at the start of the first line.
  if (path.substr(0, 3) == "\xEF\xBB\xBF")
    return "starts with a byte order mark";
  ManifestEntry entry;
  ParsedLine parsed = ParseManifestLine(path, &entry);
  if (parsed.error) return parsed.error;
  if (!parsed.has_entry) return "would read as a comment or a blank line";
  if (entry.path != path) return "would read back as another path";
  return std::nullopt;
}

TreeWalker::TreeWalker(std::string root, Options options, spdlog::logger& log)
    : root_(std::move(root)), options_(std::move(options)), log_(log) {}

TreeWalker::~TreeWalker() {
  while (!stack_.empty()) Pop();
}

Status TreeWalker::Open() {
  struct stat st {};
  if (::stat(root_.c_str(), &st) != 0) {
    return ErrorFromErrno(errno, root_);
  }
  if (!S_ISDIR(st.st_mode)) {
    return Error(ErrorCode::kUsage, RetryClass::kPermanent,
                 root_ + " is not a folder");
  }
  // The root is named by the user: a link to it is followed.
  int fd = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrorFromErrno(errno, "cannot list " + root_);
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    int err = errno;
    ::close(fd);
    return ErrorFromErrno(err, "cannot list " + root_);
  }
  Level level;
  level.dir = dir;
  level.dev = st.st_dev;
  level.ino = st.st_ino;
  stack_.push_back(std::move(level));
  List(&stack_.back());
  return {};
}

bool TreeWalker::Next(std::string* rel) {
  while (!stack_.empty()) {
    Level& level = stack_.back();
    if (level.next == level.children.size()) {
      Pop();
      continue;
    }
    const Child& child = level.children[level.next++];
    if (child.kind == Kind::kFile) {
      *rel = level.prefix + child.key;
      return true;
    }
    std::string name = child.key.substr(0, child.key.size() - 1);
    // Push may grow the stack and move `level`: copy what it needs first.
    std::string sub = level.prefix + child.key;
    Push(::dirfd(level.dir), name, sub);
  }
  return false;
}

bool TreeWalker::Push(int parent_fd, const std::string& name,
                      const std::string& rel) {
  int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
  if (!options_.follow_symlinks) flags |= O_NOFOLLOW;
  int fd = ::openat(parent_fd, name.c_str(), flags);
  struct stat st {};
  if (fd >= 0 && ::fstat(fd, &st) != 0) {
    ::close(fd);
    fd = -1;
  }
  DIR* dir = fd >= 0 ? ::fdopendir(fd) : nullptr;
  if (dir == nullptr) {
    int err = errno;
    if (fd >= 0) ::close(fd);
    log_.error("{}: cannot list folder: {}", rel, std::strerror(err));
    ++errors_;
    return false;
  }
  for (const Level& up : stack_) {
    if (up.dev == st.st_dev && up.ino == st.st_ino) {
      log_.warn("{}: link back to a folder above it, skipped", rel);
      ++skipped_;
      ::closedir(dir);
      return false;
    }
  }
  Level level;
  level.dir = dir;
  level.prefix = rel;
  level.dev = st.st_dev;
  level.ino = st.st_ino;
  stack_.push_back(std::move(level));
  List(&stack_.back());
  return true;
}

void TreeWalker::Pop() {
  ::closedir(stack_.back().dir);
  stack_.pop_back();
}

void TreeWalker::List(Level* level) {
  for (;;) {
    errno = 0;
    const dirent* entry = ::readdir(level->dir);
    if (entry == nullptr) {
      if (errno != 0) {
        log_.error("{}: cannot list folder: {}",
                   level->prefix.empty() ? root_ : level->prefix,
                   std::strerror(errno));
        ++errors_;
      }
      break;
    }
    std::string_view name = entry->d_name;
    if (name == "." || name == ".." || Excluded(*level, name)) continue;
    if (IsOwnFileName(name)) {
      log_.info("{}{}: a file ferry keeps for itself, not listed",
                level->prefix, name);
      continue;
    }
    std::string rel = level->prefix + entry->d_name;
    if (auto reason = ManifestCannotHold(rel)) {
      log_.warn("{:?}: name a manifest cannot hold ({}), skipped", rel,
                *reason);
      ++skipped_;
      continue;
    }
    std::optional<Kind> kind = Classify(level, entry, rel);
    if (!kind) continue;
    Child child{std::string(name), *kind};
    if (*kind == Kind::kFolder) child.key += '/';
    level->children.push_back(std::move(child));
  }
  // With a '/' after folder names, sorting each folder's names sorts the
  // whole tree's paths: "a.txt" < "a/b" because '.' < '/'.
  std::sort(level->children.begin(), level->children.end(),
            [](const Child& a, const Child& b) { return a.key < b.key; });
}

std::optional<TreeWalker::Kind> TreeWalker::Classify(Level* level,
                                                     const dirent* entry,
                                                     const std::string& rel) {
  mode_t type = TypeFromDirent(entry->d_type);
  bool link = type == S_IFLNK;
  if (type == 0 || (link && options_.follow_symlinks)) {
    struct stat st {};
    int flags = options_.follow_symlinks ? 0 : AT_SYMLINK_NOFOLLOW;
    if (::fstatat(::dirfd(level->dir), entry->d_name, &st, flags) != 0) {
      if (link && errno == ENOENT) {
        log_.warn("{}: link to nothing, skipped", rel);
        ++skipped_;
      } else {
        log_.error("{}: cannot stat: {}", rel, std::strerror(errno));
        ++errors_;
      }
      return std::nullopt;
    }
    type = st.st_mode & S_IFMT;
  }
  switch (type) {
    case S_IFREG:
      return Kind::kFile;
    case S_IFDIR:
      return Kind::kFolder;
    case S_IFLNK:
      log_.info("{}: symbolic link, skipped (--follow-symlinks lists it)", rel);
      ++skipped_;
      return std::nullopt;
    default:
      log_.warn("{}: {}, skipped", rel, FileTypeName(type));
      ++skipped_;
      return std::nullopt;
  }
}

bool TreeWalker::Excluded(const Level& level, std::string_view name) const {
  if (level.dev != options_.exclude_dev || level.ino != options_.exclude_ino) {
    return false;
  }
  return std::find(options_.exclude_names.begin(), options_.exclude_names.end(),
                   name) != options_.exclude_names.end();
}

}  // namespace ferry
