// What a run has finished and what it has left half done, kept in a small
// file beside its local folder, so that the same command started again
// after a kill, a crash or an interruption skips the files that are
// complete and continues the partial downloads from their kept bytes.
//
// A download's journal is ".NAME.ferry-journal" beside the destination
// folder NAME (".ferry-journal" inside it when its parent is not
// writable); an upload's is ".NAME.ferry-put-journal" beside the source
// folder, and there is none when that parent is not writable, since the
// source folder itself is not ferry's to write in. The file holds one JSON
// object per line, appended as the run goes; the last line about a file
// wins, and a line cut short by a kill is ignored. A run holds an exclusive
// lock on it, so two runs never share one. It is removed when a run ends
// with every file done.
//
// The journal belongs to one run: the same operation between the same
// places over the same manifest file, unchanged. A finished file is trusted
// on a later run only while the local file's size, mtime and inode are
// what they were when it was finished; a partial one only while its
// temporary file still holds the kept bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <unordered_map>

#include "ferry/digest.h"
#include "ferry/error.h"

namespace ferry {

class Journal {
 public:
  struct Done {
    uint64_t size = 0;
    int64_t mtime_ns = 0;
    uint64_t ino = 0;
  };
  struct Part {
    uint64_t length = 0;  // bytes kept, from the file's first
    uint64_t total = 0;   // the whole file's size, 0 when not known
    std::string etag;     // the collection's ETag for the file, if any
  };

  enum class Side { kDownload, kUpload };

  // Opens the journal of the local folder `dir`, reading what an earlier
  // run of the same `run` left (a text naming the command and its
  // manifest: what another run left is dropped); `*out` stays null when an
  // upload's journal has no place. Fails when another run holds it.
  [[nodiscard]] static Status Open(const std::string& dir, Side side,
                                   const std::string& run,
                                   std::unique_ptr<Journal>* out);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  const std::string& path() const { return path_; }
  // What an earlier run left: finished and partial files.
  size_t earlier_done() const { return done_count_; }
  size_t earlier_parts() const { return part_count_; }

  // Lookups in what an earlier run left; safe from any thread, since
  // nothing changes these maps after Open.
  const Done* FindDone(const std::string& url, const std::string& local) const;
  const Part* FindPart(const std::string& url, const std::string& local) const;

  // Records of this run, buffered; Flush() writes them out.
  void RecordDone(const std::string& url, const std::string& local,
                  const Done& done);
  void RecordPart(const std::string& url, const std::string& local,
                  const Part& part);

  // Hands buffered records to the kernel (enough to survive a kill of
  // this process); with `sync` also to stable storage.
  void Flush(bool sync);

  // The run ended with every file done: removes the journal.
  void Remove();

  // The first failure to write the journal, if any: a later run may then
  // redo some files, never take a wrong one.
  const std::optional<Error>& write_error() const { return write_error_; }

 private:
  Journal() = default;
  static std::string Line(const nlohmann::json& record);
  void Append(const nlohmann::json& record);
  static uint64_t Key(const std::string& url, const std::string& local);
  void Load(const std::string& run);
  void Apply(const nlohmann::json& record);

  std::string path_;
  int fd_ = -1;
  std::string buffer_;
  std::optional<Error> write_error_;
  size_t done_count_ = 0;
  size_t part_count_ = 0;
  // Keyed by a 64-bit digest of URL and local path: a million entries
  // cost tens of megabytes, not the paths' length.
  std::unordered_map<uint64_t, Done> done_;
  std::unordered_map<uint64_t, Part> parts_;
};

}  // namespace ferry
