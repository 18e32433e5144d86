"""The book, checked as a reader meets it: the PDF through poppler, the site through headless Chromium.

The book is built once per session from the committed outputs into a temporary folder (CI builds it again with
`llm_nb_book --execute`). Without `chromium`/`pdftotext` these tests skip, unless `CI` is set: then they fail.
Screenshots of the site go to `ci-artifacts/` (ignored).
"""
import base64, fcntl, json, os, re, select, shutil, subprocess, tempfile, time
from pathlib import Path

import pytest
from llm_nb.book import read_book, book_chapters, build_book, split_directives, readme_md, readme_cli, execute_nb

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT/'ci-artifacts'
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser') or shutil.which('google-chrome')


def need(tool, why):
    "Skip when `tool` is missing, except in CI where it must be installed"
    if shutil.which(tool): return
    if os.environ.get('CI'): pytest.fail(f"{tool} is required in CI ({why}); .ci/run installs it with apt-get")
    pytest.skip(f"{tool} not installed ({why}): apt-get install -y chromium poppler-utils")


def nb_title(path):
    "A chapter's title: its first `# ` heading"
    nb = json.loads(Path(path).read_text())
    for c in nb['cells']:
        if c['cell_type']=='markdown' and (m := re.match(r'#\s+(.+)', ''.join(c['source']))): return m[1].strip()


def shown_figures(path):
    "Figure outputs a reader sees in a notebook: image outputs of cells that are not hidden, widgets excluded"
    n = 0
    for c in json.loads(Path(path).read_text())['cells']:
        if c['cell_type']!='code': continue
        d,_ = split_directives(''.join(c['source']))
        if d.keys() & {'hide','export','exporti'} or 'false' in (d.get('include'), d.get('output')): continue
        n += sum(1 for o in c.get('outputs', []) if {'image/png','image/jpeg'} & o.get('data', {}).keys()
                 and 'application/vnd.jupyter.widget-view+json' not in o['data'])
    return n


# ---- the chapter list ----

def test_every_notebook_is_a_chapter():
    "A new notebook cannot be forgotten: every nbs/*.ipynb is in _quarto.yml, and every listed one exists"
    chapters = book_chapters(read_book(ROOT), ROOT)
    listed = {c.src.as_posix() for c in chapters}
    on_disk = {p.relative_to(ROOT).as_posix() for p in (ROOT/'nbs').glob('*.ipynb')}
    assert not on_disk - listed, f"add these notebooks to _quarto.yml (book: chapters or appendices): {sorted(on_disk - listed)}"
    assert chapters[0].src.as_posix()=='nbs/index.ipynb'
    numbered = [c.src.name for c in chapters if c.number.isdigit()]
    assert numbered==sorted(numbered), f"chapters out of file-name order in _quarto.yml: {numbered}"


def test_execute_skips_what_nbdev_test_skips(tmp_path):
    "Executing for the book runs cells as nbdev_test does: `eval: false` and `tst_flags` cells are skipped"
    from execnb.nbio import new_nb, mk_cell, write_nb, read_nb
    path = tmp_path/'t.ipynb'
    write_nb(new_nb([mk_cell("#| eval: false\nraise RuntimeError('needs the network')"),
                     mk_cell("#| slow\nraise RuntimeError('slow demo')"),
                     mk_cell("x = 6 * 7\nx")]), path)
    nb = execute_nb(read_nb(path), path)
    assert ''.join(nb.cells[2].outputs[0]['data']['text/plain']) == '42'
    assert not nb.cells[0].outputs and not nb.cells[1].outputs


# ---- README ----

def test_readme_current(tmp_path, capsys):
    "README.md is what nbs/index.ipynb says, and `llm_nb_readme --check` notices when it is not"
    readme_cli(check=True, root=str(ROOT))
    proj = tmp_path/'proj'
    shutil.copytree(ROOT/'nbs', proj/'nbs', ignore=shutil.ignore_patterns('*.ipynb_checkpoints'))
    shutil.copy(ROOT/'settings.ini', proj)
    (proj/'README.md').write_text('stale\n')
    with pytest.raises(SystemExit) as e: readme_cli(check=True, root=str(proj))
    assert 'README.md is not current' in str(e.value.code) and '\n' not in str(e.value.code)
    readme_cli(root=str(proj))
    readme_cli(check=True, root=str(proj))
    assert (proj/'README.md').read_text()==(ROOT/'README.md').read_text()
    md = readme_md(ROOT/'nbs/index.ipynb')
    assert 'pip install torch==2.13.0 -e ".[serve]" && llm_nb_pipeline' in md
    assert 'pip install torch==2.13.0 -e ".[dev]" && nbdev_test && pytest tests' in md
    for link in re.findall(r'\]\((nbs/[^)#]+)', md): assert (ROOT/link).exists(), link


# ---- the build ----

@pytest.fixture(scope='session')
def book(tmp_path_factory):
    out = tmp_path_factory.mktemp('book')
    res = build_book(ROOT, site=str(out/'_docs'), pdf_dir=str(out/'_book'), proc=str(out/'_proc'))
    chapters = book_chapters(read_book(ROOT), ROOT)
    return dict(res, out=out, chapters=chapters)


def test_build_time(book):
    "Rendering the site and the PDF takes well under two minutes on top of the notebooks"
    print(f"notebooks {book['notebooks_s']} s, site+PDF {book['render_s']} s, per notebook {book['per_notebook_s']}")
    assert book['render_s'] < 120


def test_proc_is_quarto_ready(book):
    "_proc/ holds the processed notebooks and a _quarto.yml whose chapter paths are relative to it"
    proc = book['out']/'_proc'
    cfg = read_book(proc)
    for c in book_chapters(cfg, proc): assert (proc/c.src).exists()
    assert cfg['book']['chapters'][0]=='index.ipynb'


# ---- the PDF ----

@pytest.fixture(scope='session')
def pdf_text(book):
    need('pdftotext', 'reads the PDF like a reader')
    return subprocess.run(['pdftotext', '-layout', str(book['pdf']), '-'], capture_output=True, text=True, check=True).stdout


def test_pdf_chapters_in_order(book, pdf_text):
    "One chapter per notebook, in _quarto.yml order, numbered; appendices lettered; the preface first"
    text = re.sub(r'\s+', ' ', re.sub(r'\u00ad\s*', '', pdf_text)).replace('\u2019', "'")   # hyphenated titles whole, typographic apostrophes plain
    body = text[text.index('Preface', text.index('Contents')+10):]
    pos = []
    for ch in book['chapters']:
        title = re.sub(r'\s+', ' ', nb_title(ROOT/ch.src))
        label = 'Preface' if ch.number=='' else f"{'Appendix' if ch.appendix else 'Chapter'} {ch.number} {title}"
        i = body.find(label)
        assert i>=0, f"{label!r} not found in the PDF"
        pos.append(i)
    assert pos==sorted(pos), "chapters out of order in the PDF"
    assert len(re.findall(r'(?:Chapter \d+|Appendix [A-Z]) ', body))>=len(book['chapters'])-1


def _code_strings(book):
    "All code the book shows (code blocks and inline code): where `#|` or `\\frac` may legitimately appear"
    import pypandoc
    res = []
    def walk(o):
        if isinstance(o, dict):
            if o.get('t') in ('Code', 'CodeBlock'): res.append(o['c'][1])
            else: walk(o.get('c'))
        elif isinstance(o, list):
            for x in o: walk(x)
    md = '\n\n'.join(p.read_text() for p in (book['out']/'_book'/'build').glob('*.md'))
    walk(json.loads(pypandoc.convert_text(md, 'json', format='markdown'))['blocks'])
    return '\n'.join(res)


def test_pdf_source_once(pdf_text):
    "An exported function whose source the chapter shows is printed once, not again as a signature block"
    for name in ('lm_loss', 'make_optimizer', 'lr_at', 'attention'):
        assert len(re.findall(rf'\bdef {name}\(', pdf_text)) == 1, name


def test_pdf_no_raw_markup(book, pdf_text):
    "No TeX, `$$` or cell directives leak into the text, beyond what code listings show on purpose"
    code = _code_strings(book)
    for s in ('\\frac', '$$', '#|', '\\begin{', '```'):
        assert pdf_text.count(s) <= code.count(s), f"{s!r} leaks into the PDF text"


def test_pdf_figures(book):
    "As many images as the notebooks have figure outputs a reader sees"
    need('pdfimages', 'counts the PDF images')
    rows = subprocess.run(['pdfimages', '-list', str(book['pdf'])], capture_output=True, text=True).stdout.splitlines()[2:]
    n_pdf = sum(1 for r in rows if r.split()[2]=='image')
    assert n_pdf == sum(shown_figures(ROOT/c.src) for c in book['chapters'])


def test_pdf_pages_render(book):
    "A few pages as a reader sees them, saved for a look: the title page, the contents, a chapter opening"
    need('pdftoppm', 'renders PDF pages')
    ARTIFACTS.mkdir(exist_ok=True)
    subprocess.run(['pdftoppm', '-r', '60', '-f', '1', '-l', '4', '-png', str(book['pdf']), str(ARTIFACTS/'pdf-page')], check=True)
    assert len(list(ARTIFACTS.glob('pdf-page-*.png')))>=4


# ---- the site, in a browser ----

class Chromium:
    "Headless Chromium driven with the DevTools protocol over a pipe: nothing to install beyond the browser"
    def __init__(self, exe=CHROMIUM):
        self.profile = tempfile.mkdtemp()
        to_chrome_r, self.w = os.pipe()
        self.r, from_chrome_w = os.pipe()
        a, b = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_chrome_r, from_chrome_w))
        def child(): os.dup2(a, 3); os.dup2(b, 4)
        self.proc = subprocess.Popen([exe, '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
                                      '--remote-debugging-pipe', f'--user-data-dir={self.profile}', '--no-first-run',
                                      '--disable-extensions', 'about:blank'],
                                     close_fds=False, preexec_fn=child, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for fd in (to_chrome_r, from_chrome_w, a, b): os.close(fd)
        self.buf, self.n, self.events = b'', 0, []
        target = self.send('Target.createTarget', url='about:blank')['targetId']
        self.session = self.send('Target.attachToTarget', targetId=target, flatten=True)['sessionId']
        for m in ('Page.enable', 'Network.enable', 'Runtime.enable'): self.send(m, session=True)
        self.send('Emulation.setDeviceMetricsOverride', session=True, width=1280, height=1000, deviceScaleFactor=1, mobile=False)

    def _read(self, timeout=30):
        end = time.time()+timeout
        while b'\0' not in self.buf:
            if not select.select([self.r], [], [], max(0, end-time.time()))[0]: raise TimeoutError('chromium did not answer')
            chunk = os.read(self.r, 1<<20)
            if not chunk: raise RuntimeError('chromium exited')
            self.buf += chunk
        msg, self.buf = self.buf.split(b'\0', 1)
        return json.loads(msg)

    def send(self, method, session=False, **params):
        self.n += 1
        msg = dict(id=self.n, method=method, params=params)
        if session: msg['sessionId'] = self.session
        os.write(self.w, json.dumps(msg).encode()+b'\0')
        while True:
            m = self._read()
            if m.get('id')==self.n:
                if 'error' in m: raise RuntimeError(f"{method}: {m['error']}")
                return m['result']
            self.events.append(m)

    def open(self, url):
        "Load `url`, wait for its load event; return the failed requests"
        self.events = []
        self.send('Page.navigate', session=True, url=url)
        while not any(e.get('method')=='Page.loadEventFired' for e in self.events): self.events.append(self._read())
        time.sleep(0.2)
        return [e['params'] for e in self.events if e.get('method')=='Network.loadingFailed']

    def js(self, expr):
        return self.send('Runtime.evaluate', session=True, expression=expr, returnByValue=True)['result'].get('value')

    def screenshot(self, path, full=False):
        png = self.send('Page.captureScreenshot', session=True, format='png', captureBeyondViewport=full)['data']
        Path(path).write_bytes(base64.b64decode(png))

    def close(self):
        self.proc.kill(); self.proc.wait()
        os.close(self.r); os.close(self.w)
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope='session')
def browser():
    need('chromium', 'opens the site like a reader')
    b = Chromium()
    yield b
    b.close()


_text_outside_code = """(() => { const m = document.querySelector('main').cloneNode(true);
  m.querySelectorAll('pre, code, math, script, style').forEach(e => e.remove()); return m.innerText; })()"""


def _page_check(browser, book, ch, shot):
    site = book['out']/'_docs'
    failed = browser.open((site/ch.page).as_uri())
    assert not failed, f"{ch.page}: failed requests {failed}"
    ARTIFACTS.mkdir(exist_ok=True)
    browser.screenshot(ARTIFACTS/shot)
    hrefs = browser.js("[...document.querySelectorAll('#sidebar li a')].map(a => a.getAttribute('href'))")
    assert hrefs==[c.page for c in book['chapters']], f"{ch.page}: the sidebar does not list every chapter in order"
    assert browser.js("document.querySelector('#sidebar a.active').getAttribute('href')")==ch.page
    assert nb_title(ROOT/ch.src) in browser.js("document.querySelector('main h1').innerText").replace('\u2019', "'")   # pandoc's smart quotes
    imgs = browser.js("[...document.images].map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])")
    assert all(ok for _,ok in imgs), f"{ch.page}: images that did not load: {[s for s,ok in imgs if not ok]}"
    assert len(imgs)==shown_figures(ROOT/ch.src)
    text = browser.js(_text_outside_code)
    assert '$' not in text and '\\frac' not in text, f"{ch.page}: raw TeX in the text"
    return browser.js("document.querySelectorAll('main math').length")


def test_site_front_page(browser, book):
    "index.html: the front page, with the book's sidebar, the quick start and the chapter map"
    ch = book['chapters'][0]
    _page_check(browser, book, ch, 'site-index.png')
    text = browser.js("document.querySelector('main').innerText")
    assert 'llm_nb_train' in text and 'Chapters' in text
    assert browser.js("document.querySelectorAll('main table a').length")>=1


def test_site_chapters(browser, book):
    "Every chapter page loads with its title, sidebar, figures and rendered math; links between pages work"
    n_math = {}
    for ch in book['chapters'][1:]: n_math[ch.name] = _page_check(browser, book, ch, f'site-{ch.name}.png')
    def prose(c): return re.sub(r'```.*?```|`[^`]*`', '', '\n'.join(''.join(x['source']) for x in
                                json.loads((ROOT/c.src).read_text())['cells'] if x['cell_type']=='markdown'), flags=re.S)
    with_tex = [c.name for c in book['chapters'] if re.search(r'\$[^$\s]', prose(c))]
    for name in with_tex: assert n_math[name]>0, f"{name}: the notebook has TeX but the page has no MathML"
    site = book['out']/'_docs'
    for page in site.glob('*.html'):
        for href in re.findall(r'href="([^"#:]+\.html)(?:#([^"]*))?"', page.read_text()):
            assert (site/href[0]).exists(), f"{page.name} links to a missing page {href[0]}"
