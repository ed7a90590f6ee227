#include "integration/harness.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

extern char** environ;

namespace ferry::testing {
namespace {

std::map<std::string, std::string> ReadEnvFile(const fs::path& path) {
  std::map<std::string, std::string> values;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq != std::string::npos)
      values[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return values;
}

}  // namespace

const Collection& TestCollection() {
  static const Collection collection = [] {
    auto env = ReadEnvFile(fs::path(FERRY_TEST_DIR) / "state" / "env");
    Collection c;
    c.url = env["FERRY_COLLECTION_URL"];
    c.ca_file = env["FERRY_COLLECTION_CA"];
    c.root = env["FERRY_COLLECTION_ROOT"];
    c.token_rw_file = env["FERRY_TOKEN_RW_FILE"];
    c.token_ro_file = env["FERRY_TOKEN_RO_FILE"];
    c.access_log = env["FERRY_COLLECTION_ACCESS_LOG"];
    c.collection_id = env["FERRY_COLLECTION_ID"];
    c.https_off_id = env["FERRY_HTTPS_OFF_COLLECTION_ID"];
    c.auth_url = env["FERRY_AUTH_URL"];
    c.transfer_url = env["FERRY_TRANSFER_URL"];
    c.client_id = env["FERRY_CLIENT_ID"];
    c.client_secret_file = env["FERRY_CLIENT_SECRET_FILE"];
    c.short_client_id = env["FERRY_SHORT_CLIENT_ID"];
    c.short_client_secret_file = env["FERRY_SHORT_CLIENT_SECRET_FILE"];
    c.instant_client_id = env["FERRY_INSTANT_CLIENT_ID"];
    c.instant_client_secret_file = env["FERRY_INSTANT_CLIENT_SECRET_FILE"];
    c.auth_log = env["FERRY_AUTH_LOG"];
    c.elsewhere_url = env["FERRY_ELSEWHERE_URL"];
    c.elsewhere_log = env["FERRY_ELSEWHERE_LOG"];
    return c;
  }();
  return collection;
}

RunResult RunFerry(const std::vector<std::string>& args,
                   const std::map<std::string, std::string>& env) {
  return RunFerryAndSignal(args, nullptr, 0, env);
}

RunResult RunFerryAndSignal(const std::vector<std::string>& args,
                            const std::function<bool()>& ready, int signal,
                            const std::map<std::string, std::string>& env) {
  return RunFerryWhile(
      args, ready, [signal](pid_t pid) { kill(pid, signal); }, env);
}

RunResult RunFerryWhile(const std::vector<std::string>& args,
                        const std::function<bool()>& ready,
                        const std::function<void(pid_t)>& act,
                        const std::map<std::string, std::string>& env) {
  // mkstemp replaces the template's last six characters.
  std::string out_name = "/tmp/ferry-test-out-" + std::string(6, 'X');
  std::string err_name = "/tmp/ferry-test-err-" + std::string(6, 'X');
  int out_fd = mkstemp(out_name.data());
  int err_fd = mkstemp(err_name.data());

  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view var(*e);
    bool dropped = false;
    for (std::string_view name :
         {"FERRY_TOKEN=", "FERRY_CLIENT_ID=", "FERRY_CLIENT_SECRET=",
          "FERRY_TRANSFER_TOKEN=", "XDG_CACHE_HOME="}) {
      dropped = dropped || var.rfind(name, 0) == 0;
    }
    if (!dropped) env_strings.emplace_back(*e);
  }
  if (env.count("XDG_CACHE_HOME") == 0) {
    env_strings.push_back("XDG_CACHE_HOME=" +
                          (fs::path(FERRY_TEST_DIR) / "cache").string());
  }
  for (auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  std::vector<std::string> argv_strings = {FERRY_BIN};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_fd, STDERR_FILENO);
  pid_t pid;
  RunResult result;
  if (posix_spawn(&pid, FERRY_BIN, &actions, nullptr, argv.data(),
                  envp.data()) == 0) {
    int status = 0;
    if (ready) {
      // Poll for the moment to signal, for 30 s at most.
      for (int i = 0; i < 30000 && waitpid(pid, &status, WNOHANG) == 0; ++i) {
        if (ready()) {
          act(pid);
          break;
        }
        usleep(1000);
      }
    }
    waitpid(pid, &status, 0);
    result.exit_code =
        WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  posix_spawn_file_actions_destroy(&actions);
  close(out_fd);
  close(err_fd);
  result.out = ReadFile(out_name);
  result.err = ReadFile(err_name);
  unlink(out_name.c_str());
  unlink(err_name.c_str());
  return result;
}

ChaosProxy::ChaosProxy(const nlohmann::json& rules,
                       const std::vector<std::string>& extra) {
  // mkdtemp replaces the template's last six characters.
  std::string dir_template = "/tmp/ferry-chaos-" + std::string(6, 'X');
  if (mkdtemp(dir_template.data()) == nullptr) return;
  dir_ = dir_template;
  {
    std::ofstream out(dir_ / "rules.json");
    out << rules.dump();
  }
  const fs::path state = fs::path(TestCollection().ca_file).parent_path();
  std::vector<std::string> args = {FERRY_CHAOS_PROXY,
                                   "--cert",
                                   (state / "server.pem").string(),
                                   "--key",
                                   (state / "server.key").string(),
                                   "--upstream",
                                   TestCollection().url,
                                   "--upstream-ca",
                                   TestCollection().ca_file,
                                   "--rules",
                                   (dir_ / "rules.json").string(),
                                   "--stats",
                                   (dir_ / "stats.json").string(),
                                   "--log",
                                   (dir_ / "requests.log").string()};
  args.insert(args.end(), extra.begin(), extra.end());
  std::string listen = "127.0.0.1";
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "--listen") listen = args[i + 1];
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int out[2];
  if (pipe(out) != 0) return;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  int spawned = posix_spawn(&pid_, FERRY_CHAOS_PROXY, &actions, nullptr,
                            argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  if (spawned != 0) {
    pid_ = -1;
    close(out[0]);
    return;
  }
  // It prints PORT=N once it listens; wait for that, 20 s at most.
  std::string text;
  struct pollfd pfd = {out[0], POLLIN, 0};
  for (int waited = 0; waited < 200 && text.find('\n') == std::string::npos;
       ++waited) {
    if (poll(&pfd, 1, 100) <= 0) continue;
    char buffer[256];
    ssize_t n = read(out[0], buffer, sizeof buffer);
    if (n <= 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  close(out[0]);
  size_t at = text.find("PORT=");
  if (at == std::string::npos) return;
  url_ = "https://" + listen + ":" +
         std::to_string(std::stoi(text.substr(at + 5)));
}

ChaosProxy::~ChaosProxy() {
  Stop();
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

void ChaosProxy::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::vector<std::string> ChaosProxy::Log() const {
  std::vector<std::string> lines;
  std::ifstream in(dir_ / "requests.log");
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

nlohmann::json ChaosProxy::Stats() {
  Stop();
  std::ifstream in(dir_ / "stats.json");
  nlohmann::json stats = nlohmann::json::parse(in, nullptr, false);
  return stats.is_discarded() ? nlohmann::json::object() : stats;
}

std::string RandomBytes(size_t size, uint64_t seed) {
  std::mt19937_64 random(seed);
  std::string data(size, '\0');
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t v = random();
    std::memcpy(data.data() + i, &v, 8);
  }
  for (; i < size; ++i) data[i] = static_cast<char>(random());
  return data;
}

void WriteFile(const fs::path& path, const std::string& data) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> ListTree(const fs::path& dir) {
  std::vector<std::string> names;
  if (!fs::exists(dir)) return names;
  for (auto& e : fs::recursive_directory_iterator(dir)) {
    names.push_back(fs::relative(e.path(), dir).string() +
                    (e.is_directory() ? "/" : ""));
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<nlohmann::json> ReadReport(const fs::path& path) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

std::string XxhsumOf(const fs::path& path) {
  std::string command = "xxhsum -H2 '" + path.string() + "'";
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return "";
  char buffer[256] = {};
  size_t n = fread(buffer, 1, sizeof buffer - 1, p);
  pclose(p);
  std::string out(buffer, n);
  return out.substr(0, out.find(' '));
}

void CollectionTest::SetUp() {
  ASSERT_FALSE(TestCollection().url.empty())
      << "the test collection is not running (CTest's collection.start "
         "fixture starts it)";
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  name_ = std::string(info->test_suite_name()) + "." + info->name();
  src_ = TestCollection().root / name_;
  dest_ = fs::path(FERRY_TEST_DIR) / "out" / name_;
  work_ = fs::path(FERRY_TEST_DIR) / "work" / name_;
  for (const fs::path& p : {src_, dest_, work_}) {
    fs::remove_all(p);
  }
  fs::create_directories(src_);
  fs::create_directories(work_);
  std::error_code ec;
  log_offset_ = fs::file_size(TestCollection().access_log, ec);
  if (ec) log_offset_ = 0;
}

void CollectionTest::Serve(const std::string& rel, const std::string& data) {
  WriteFile(src_ / rel, data);
}

std::string CollectionTest::Manifest(const std::vector<std::string>& lines) {
  fs::path path = work_ / "manifest";
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  for (const auto& line : lines) out << line << '\n';
  return path.string();
}

std::vector<std::string> CollectionTest::GetArgs(
    const std::string& manifest) const {
  return {"get",       manifest,
          "--from",    TestCollection().url + "/" + name_,
          "--to",      dest_.string(),
          "--ca-file", TestCollection().ca_file,
          "--report",  (work_ / "report.jsonl").string()};
}

std::vector<Request> CollectionTest::Requests() const {
  // Lines look like: TIME ADDR conn=SERIAL/NUMBER "METHOD TARGET PROTO" ...
  std::vector<Request> requests;
  std::ifstream log(TestCollection().access_log);
  log.seekg(static_cast<std::streamoff>(log_offset_));
  std::string line;
  const std::string folder = "/" + name_ + "/";
  while (std::getline(log, line)) {
    size_t conn = line.find(" conn=");
    size_t quote = line.find('"');
    if (conn == std::string::npos || quote == std::string::npos) continue;
    std::istringstream request(line.substr(quote + 1));
    Request r;
    request >> r.method >> r.target >> r.protocol;
    // Test hooks put a prefix before the folder (/_dated/NAME/...).
    if (r.target.find(folder) == std::string::npos) continue;
    if (!r.protocol.empty() && r.protocol.back() == '"') r.protocol.pop_back();
    size_t serial = conn + 6;
    r.connection = line.substr(serial, line.find('/', serial) - serial);
    // After the quoted request: STATUS BYTES ... range="VALUE".
    size_t closing = line.find('"', quote + 1);
    if (closing != std::string::npos) {
      std::istringstream rest(line.substr(closing + 1));
      uint64_t body_bytes = 0, request_bytes = 0;
      rest >> r.status >> body_bytes >> request_bytes >> r.seconds;
    }
    size_t ended = line.rfind(" t=");
    if (ended != std::string::npos) r.ended = std::stod(line.substr(ended + 3));
    size_t range = line.find(" range=\"");
    if (range != std::string::npos) {
      size_t start = range + 8;
      r.range = line.substr(start, line.find('"', start) - start);
      if (r.range == "-") r.range.clear();
    }
    requests.push_back(r);
  }
  return requests;
}

void CollectionTest::ExpectRequestsOver(const std::string& protocol,
                                        size_t count,
                                        size_t max_connections) const {
  std::vector<Request> requests;
  for (Request& q : Requests()) {
    if (q.method != "OPTIONS") requests.push_back(std::move(q));
  }
  ASSERT_EQ(requests.size(), count);
  std::set<std::string> connections;
  for (const Request& q : requests) {
    EXPECT_EQ(q.protocol, protocol) << q.target;
    connections.insert(q.connection);
  }
  EXPECT_LE(connections.size(), max_connections);
}

void CollectionTest::ExpectSameTree() const {
  EXPECT_EQ(ListTree(dest_), ListTree(src_));
  for (auto& e : fs::recursive_directory_iterator(src_)) {
    if (!e.is_regular_file()) continue;
    fs::path copy = dest_ / fs::relative(e.path(), src_);
    ASSERT_TRUE(ReadFile(copy) == ReadFile(e.path())) << copy;
  }
}

}  // namespace ferry::testing
