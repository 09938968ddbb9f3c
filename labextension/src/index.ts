// txgit's JupyterLab panel: the history of the active notebook's kernel state, and actions on it.
//
// Everything it shows comes from the server extension (txgit/jupyter/handlers.py), which renders the
// same HTML fragments as `%txgit log` and `txgit serve`; every action runs the `%txgit` magic in the
// notebook's own kernel (txgit/jupyter/kernel.py). No history logic lives here: this file only asks,
// shows, and routes clicks.

import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, InputDialog, showDialog } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { KernelMessage, ServerConnection } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

const MARK = '@@txgit-lab@@ ';
const PAGE = 100; // commits per request; the next page loads as the graph scrolls near its end
const POLL_MS = 3000; // how often a visible panel asks whether a ref moved outside it (a terminal beside)

const icon = new LabIcon({
  name: 'txgit:history',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 16 16">' +
    '<g class="jp-icon3" fill="#616161"><circle cx="4" cy="3" r="2"/><circle cx="4" cy="13" r="2"/>' +
    '<circle cx="12" cy="7" r="2"/><rect x="3.3" y="3" width="1.4" height="10"/>' +
    '<path d="M4 9 C4 7 12 9 12 7" stroke="#616161" stroke-width="1.4" fill="none"/></g></svg>'
});

interface IStatus {
  loaded: boolean;
  root?: string;
  branch?: string | null;
  head?: string | null;
  auto?: boolean;
  clean?: boolean;
  unloaded?: string[];
  reuse?: boolean;
  merging?: { label: string; unresolved: string[]; note: string } | null;
  warning?: string;
  error?: string;
  missing?: boolean;
}

interface IAnswer {
  ok: boolean;
  output?: string;
  error?: string;
  needs_force?: boolean;
  needs_trust?: boolean;
}

/** GET <base_url>txgit/<what>: a JSON answer, or an Error carrying the server's one line. */
async function ask(what: string, params: { [key: string]: string | number }): Promise<any> {
  const settings = ServerConnection.makeSettings();
  const query = Object.keys(params)
    .map(k => `${encodeURIComponent(k)}=${encodeURIComponent(String(params[k]))}`)
    .join('&');
  const url = URLExt.join(settings.baseUrl, 'txgit', what) + '?' + query;
  const response = await ServerConnection.makeRequest(url, {}, settings);
  let body: any = {};
  try {
    body = await response.json();
  } catch (e) {
    body = { error: `${response.status} ${response.statusText}` };
  }
  if (!response.ok) {
    throw new Error(body.error || `${response.status} ${response.statusText}`);
  }
  return body;
}

/** One request to txgit inside the notebook's kernel (a silent execute: no cell, no commit). */
async function kernelCall(panel: NotebookPanel, request: object): Promise<any> {
  const kernel = panel.sessionContext.session?.kernel;
  if (!kernel) {
    throw new Error('this notebook has no kernel');
  }
  // a JSON string is a valid Python string literal
  const code = `__import__("txgit.jupyter.kernel", fromlist=["call"]).call(${JSON.stringify(JSON.stringify(request))})`;
  const future = kernel.requestExecute({ code, silent: true, store_history: false, allow_stdin: false });
  let out = '';
  let error = '';
  future.onIOPub = msg => {
    if (KernelMessage.isStreamMsg(msg) && msg.content.name === 'stdout') {
      out += msg.content.text;
    } else if (KernelMessage.isErrorMsg(msg)) {
      error = `${msg.content.ename}: ${msg.content.evalue}`;
    }
  };
  await future.done;
  const line = out.split('\n').find(l => l.startsWith(MARK));
  if (line === undefined) {
    if (error.startsWith('ModuleNotFoundError')) {
      return { loaded: false, missing: true, error };
    }
    throw new Error(error || 'no answer from the kernel');
  }
  return JSON.parse(line.slice(MARK.length));
}

function el(tag: string, cls: string, text?: string): HTMLElement {
  const e = document.createElement(tag);
  e.className = cls;
  if (text !== undefined) {
    e.textContent = text;
  }
  return e;
}

function button(label: string, cls: string, onClick: () => void): HTMLButtonElement {
  const b = el('button', `jp-Button jp-mod-styled ${cls}`, label) as HTMLButtonElement;
  b.addEventListener('click', onClick);
  return b;
}

export class TxgitPanel extends Widget {
  private notebook: NotebookPanel | null = null;
  private status: IStatus = { loaded: false };
  private statusLine = el('div', 'txgit-lab-status');
  private bar = el('div', 'txgit-lab-bar');
  private mergeBar = el('div', 'txgit-lab-merge');
  private message = el('div', 'txgit-lab-message');
  private graph = el('div', 'txgit-lab-graph txgit-view');
  private detail = el('div', 'txgit-lab-detail txgit-view');
  private searchBox = document.createElement('input');
  private autoBox = document.createElement('input');
  private reuseBox = document.createElement('input');
  private loaded = 0; // commits shown in the graph
  private total = 0;
  private loading = false;
  private selected: string | null = null;
  private compareBase: string | null = null;
  private refreshTimer: number | undefined;
  private generation = 0; // a refresh started for another notebook drops its late answers
  private version = ''; // the refs the graph was drawn from (the server's fingerprint)
  private acting = false; // an action runs: its own refresh follows, no poll meanwhile
  private polling = false; // one poll at a time: its refresh waits behind a long cell in the kernel
  private pollTimer: number;
  private restarted = false; // the notebook's kernel restarts: redraw when it is idle again

  constructor() {
    super();
    this.addClass('txgit-lab');
    this.node.appendChild(this.statusLine);
    this.node.appendChild(this.bar);
    this.node.appendChild(this.mergeBar);
    this.node.appendChild(this.message);
    this.node.appendChild(this.graph);
    this.node.appendChild(this.detail);
    this.buildBar();
    this.graph.addEventListener('scroll', () => this.maybeLoadMore());
    // Commit links and rows, anywhere in the panel (graph, commit view, diffs, search hits)
    this.node.addEventListener('click', event => {
      const target = event.target as HTMLElement;
      const hit = target.closest('[data-commit]') as HTMLElement | null;
      if (!hit || target.closest('button')) {
        return;
      }
      if (hit.tagName === 'A') {
        event.preventDefault();
      }
      if (hit.closest('.txgit-commit') && hit.tagName !== 'A') {
        return; // the commit view itself carries data-commit: clicks inside it are not navigation
      }
      void this.showCommit(hit.dataset.commit as string);
    });
    this.showEnable('Open a notebook to see its history.');
    void this.loadCss();
    this.pollTimer = window.setInterval(() => void this.poll(), POLL_MS);
  }

  dispose(): void {
    window.clearInterval(this.pollTimer);
    super.dispose();
  }

  /** A terminal beside the notebook (`txgit pull`, `checkout`, `branch -d`) moves refs without a cell:
   *  redraw when the server says they moved since the graph was drawn. */
  private async poll(): Promise<void> {
    const root = this.status.root;
    if (!root || !this.version || !this.isVisible || document.hidden || this.loading || this.acting || this.polling) {
      return;
    }
    this.polling = true;
    try {
      const { version } = await ask('refs', { root });
      if (version !== this.version && root === this.status.root && !this.acting) {
        this.say(''); // what the last action said is about the picture before
        await this.refresh();
      }
    } catch (e) {
      // the next refresh says what is wrong; a poll stays quiet
    } finally {
      this.polling = false;
    }
  }

  private buildBar(): void {
    this.autoBox.type = 'checkbox';
    this.autoBox.className = 'txgit-lab-auto';
    this.autoBox.addEventListener('change', () => void this.action(['auto', this.autoBox.checked ? 'on' : 'off']));
    const auto = el('label', 'txgit-lab-auto-label');
    auto.appendChild(this.autoBox);
    auto.appendChild(document.createTextNode(' auto-commit'));
    this.reuseBox.type = 'checkbox';
    this.reuseBox.className = 'txgit-lab-reuse';
    this.reuseBox.addEventListener('change', () => void this.action(['reuse', this.reuseBox.checked ? 'on' : 'off']));
    const reuse = el('label', 'txgit-lab-reuse-label');
    reuse.title = "load a cell's recorded results instead of running it again (needs auto-commit)";
    reuse.appendChild(this.reuseBox);
    reuse.appendChild(document.createTextNode(' reuse'));
    this.searchBox.type = 'search';
    this.searchBox.placeholder = 'variable history: name';
    this.searchBox.className = 'txgit-lab-search';
    this.searchBox.addEventListener('keydown', e => {
      if (e.key === 'Enter') {
        void this.search(this.searchBox.value);
      }
    });
    this.bar.appendChild(button('Refresh', 'txgit-lab-refresh', () => void this.refresh()));
    this.bar.appendChild(button('Commit…', 'txgit-lab-commit', () => void this.commitWithMessage()));
    this.bar.appendChild(button('Pull', 'txgit-lab-pull', () => void this.trusting(['pull'])));
    this.bar.appendChild(button('Push', 'txgit-lab-push', () => void this.action(['push'])));
    this.bar.appendChild(auto);
    this.bar.appendChild(reuse);
    this.bar.appendChild(this.searchBox);
    this.bar.appendChild(button('Search', 'txgit-lab-search-go', () => void this.search(this.searchBox.value)));
  }

  private async loadCss(): Promise<void> {
    try {
      const { css } = await ask('css', {});
      const style = document.createElement('style');
      style.textContent = css;
      this.node.appendChild(style);
    } catch (e) {
      this.say(`txgit server extension not reachable: ${(e as Error).message}`, true);
    }
  }

  setNotebook(panel: NotebookPanel | null): void {
    if (panel === this.notebook) {
      return;
    }
    this.notebook?.sessionContext.statusChanged.disconnect(this.kernelStatus, this);
    panel?.sessionContext.statusChanged.connect(this.kernelStatus, this);
    this.notebook = panel;
    this.selected = null;
    this.compareBase = null;
    this.detail.innerHTML = '';
    void this.refresh();
  }

  /** A restarted kernel holds nothing and has not loaded txgit: the old kernel's picture (its merge bar,
   *  whose buttons then answered "not loaded", and its message) is redrawn once the new one is up. */
  private kernelStatus(_: unknown, status: string): void {
    if (status === 'restarting' || status === 'autorestarting' || status === 'dead') {
      this.restarted = true;
    } else if (this.restarted && status === 'idle') {
      this.restarted = false;
      this.say('');
      void this.refresh();
    }
  }

  /** After a cell ran: the auto-commit lands shortly; several cells in a row refresh once. */
  scheduleRefresh(): void {
    window.clearTimeout(this.refreshTimer);
    this.refreshTimer = window.setTimeout(() => void this.refresh(), 300);
  }

  private say(text: string, error = false): void {
    this.message.textContent = text;
    this.message.classList.toggle('error', error);
  }

  private showEnable(text: string): void {
    this.version = '';
    this.mergeBar.style.display = 'none';
    this.graph.innerHTML = '';
    this.detail.innerHTML = '';
    this.statusLine.textContent = '';
    this.bar.style.display = 'none';
    const box = el('div', 'txgit-lab-enable');
    box.appendChild(el('p', '', text));
    if (this.notebook) {
      box.appendChild(
        button('Insert %load_ext txgit', 'txgit-lab-insert', () => {
          const nb = this.notebook!.content;
          nb.activeCellIndex = 0;
          NotebookActions.insertAbove(nb);
          nb.activeCell!.model.sharedModel.setSource('%load_ext txgit');
        })
      );
    }
    this.graph.appendChild(box);
  }

  async refresh(): Promise<void> {
    const generation = ++this.generation;
    const panel = this.notebook;
    if (!panel) {
      this.showEnable('Open a notebook to see its history.');
      return;
    }
    try {
      await panel.sessionContext.ready;
      const status: IStatus = await kernelCall(panel, { op: 'status' });
      if (generation !== this.generation) {
        return;
      }
      this.status = status;
      if (!status.loaded) {
        this.showEnable(
          status.missing
            ? "txgit is not installed in this notebook's kernel environment: pip install 'txgit[jupyter]' there, restart the kernel, then run %load_ext txgit."
            : "txgit is not tracking this notebook's kernel. Run %load_ext txgit in a cell: every cell is then committed, and its history shows here."
        );
        return;
      }
      this.bar.style.display = '';
      if (status.warning) {
        this.say(status.warning, true); // e.g. an auto-commit that failed: the next cell would have said it
      }
      this.autoBox.checked = !!status.auto;
      this.reuseBox.checked = !!status.reuse;
      const where = status.branch ? `on ${status.branch}` : 'detached HEAD';
      const head = status.head ? ` at ${status.head.slice(0, 8)}` : ', no commits yet';
      // a fresh (restarted) kernel holds none of its branch's values: said, or "nothing changed" misleads
      const unloaded = status.unloaded || [];
      const notLoaded = unloaded.length
        ? ` · not loaded: ${unloaded.slice(0, 8).join(', ')}${unloaded.length > 8 ? ` and ${unloaded.length - 8} more` : ''}` +
          ` (%txgit checkout ${status.branch || 'REV'} loads them)`
        : '';
      this.statusLine.textContent = `${where}${head}${status.clean ? '' : ' · cells ran since the last commit'}${notLoaded}`;
      this.statusLine.dataset.head = status.head || '';
      this.showMerge(status.merging || null);
      await this.loadPage(0, generation);
    } catch (e) {
      this.say((e as Error).message, true);
    }
  }

  /** A pull or merge stopped on conflicts: what waits, and one click per way out (all conflicts at once;
   *  one variable at a time is `%txgit merge --ours NAME` in a cell). Either side's values stay in history. */
  private showMerge(merging: { label: string; unresolved: string[]; note: string } | null): void {
    this.mergeBar.innerHTML = '';
    this.mergeBar.style.display = merging ? '' : 'none';
    if (!merging) {
      return;
    }
    const names = merging.unresolved.join(', ');
    this.mergeBar.appendChild(
      el('div', 'txgit-lab-merge-note', merging.note || `merging ${merging.label}: every conflict is resolved`)
    );
    if (merging.unresolved.length) {
      this.mergeBar.appendChild(
        button(`Keep mine: ${names}`, 'txgit-lab-ours', () => void this.takeSide('--ours'))
      );
      this.mergeBar.appendChild(
        button(`Take theirs (${merging.label}): ${names}`, 'txgit-lab-theirs', () => void this.takeSide('--theirs'))
      );
    }
    this.mergeBar.appendChild(button('Abort merge', 'txgit-lab-abort', () => void this.action(['merge', '--abort'])));
  }

  private async loadPage(start: number, generation: number): Promise<void> {
    const root = this.status.root as string;
    this.loading = true;
    try {
      const t0 = performance.now();
      // HEAD is where this notebook's kernel is (a second kernel's branch is not the folder's HEAD)
      const here = { branch: this.status.branch || '', head: this.status.head || '' };
      const page = await ask('history', { root, start, count: PAGE, ...here });
      if (generation !== this.generation) {
        return;
      }
      if (start === 0) {
        this.graph.innerHTML = '';
        this.graph.scrollTop = 0;
        this.version = page.version;
      }
      this.graph.querySelector('.txgit-lab-more')?.remove();
      const holder = document.createElement('div');
      holder.innerHTML = page.html;
      while (holder.firstChild) {
        this.graph.appendChild(holder.firstChild);
      }
      this.loaded = page.stop;
      this.total = page.total;
      if (this.loaded < this.total) {
        this.graph.appendChild(el('div', 'txgit-lab-more', `${this.total - this.loaded} older commits: scroll to load`));
      }
      this.graph.dataset.loaded = String(this.loaded);
      this.graph.dataset.total = String(this.total);
      this.graph.dataset.renderMs = (performance.now() - t0).toFixed(1);
      this.markSelected();
    } finally {
      this.loading = false;
    }
    this.maybeLoadMore();
  }

  private maybeLoadMore(): void {
    const g = this.graph;
    if (!this.loading && this.loaded < this.total && g.scrollTop + g.clientHeight > g.scrollHeight - 400) {
      void this.loadPage(this.loaded, this.generation);
    }
  }

  private markSelected(): void {
    this.graph.querySelectorAll('.txgit-row.selected').forEach(r => r.classList.remove('selected'));
    if (this.selected) {
      this.graph.querySelector(`.txgit-row[data-commit="${this.selected}"]`)?.classList.add('selected');
    }
  }

  async showCommit(id: string): Promise<void> {
    if (!this.status.root) {
      return;
    }
    try {
      const c = await ask('commit', { root: this.status.root, rev: id });
      this.selected = c.id;
      this.markSelected();
      this.detail.innerHTML = '';
      const actions = el('div', 'txgit-lab-bar txgit-lab-actions');
      actions.appendChild(button('Check out', 'txgit-lab-checkout', () => void this.checkout(c.id)));
      actions.appendChild(button('New branch…', 'txgit-lab-branch', () => void this.newBranch(c.id)));
      if (c.parents.length) {
        actions.appendChild(button('Diff with parent', 'txgit-lab-diff-parent', () => void this.diff(c.parents[0], c.id)));
      }
      if (this.compareBase && this.compareBase !== c.id) {
        const base = this.compareBase;
        actions.appendChild(button(`Compare with ${base.slice(0, 8)}`, 'txgit-lab-compare', () => void this.diff(base, c.id)));
      }
      actions.appendChild(
        button('Mark for compare', 'txgit-lab-mark', () => {
          this.compareBase = c.id;
          this.say(`marked ${c.short}: click another commit, then "Compare with ${c.short}"`);
        })
      );
      this.detail.appendChild(actions);
      const body = el('div', 'txgit-lab-commit-view');
      body.innerHTML = c.html;
      this.detail.appendChild(body);
      if (c.parents.length) {
        // what changed inside each variable, below: it loads values, so it comes after the commit shows
        const d = await ask('diff', { root: this.status.root, a: c.parents[0], b: c.id });
        if (this.selected === c.id && body.isConnected) {
          const diff = el('div', 'txgit-lab-parent-diff');
          diff.innerHTML = d.html;
          this.detail.appendChild(diff);
        }
      }
    } catch (e) {
      this.say((e as Error).message, true);
    }
  }

  async diff(a: string, b: string): Promise<void> {
    try {
      const d = await ask('diff', { root: this.status.root as string, a, b });
      this.detail.innerHTML = '';
      const body = el('div', 'txgit-lab-diff-view');
      body.innerHTML = d.html;
      this.detail.appendChild(body);
    } catch (e) {
      this.say((e as Error).message, true);
    }
  }

  async search(name: string): Promise<void> {
    name = name.trim();
    if (!name || !this.status.root) {
      return;
    }
    try {
      const v = await ask('variable', { root: this.status.root, name });
      this.detail.innerHTML = '';
      const body = el('div', 'txgit-lab-search-results');
      body.innerHTML = v.html;
      this.detail.appendChild(body);
    } catch (e) {
      this.say((e as Error).message, true);
    }
  }

  /** `%txgit ARGS` in the notebook's kernel; refreshes the panel after it. */
  private async action(args: string[]): Promise<IAnswer | null> {
    if (!this.notebook) {
      return null;
    }
    this.say(`%txgit ${args.join(' ')} …`);
    this.acting = true;
    try {
      const r: IAnswer = await kernelCall(this.notebook, { op: 'magic', args });
      // a refusal's one line first; what the verb printed before it (a pull's conflicts, both
      // versions of each) below it: it was dropped, and the line alone did not say what to resolve
      const output = (r.output || '').trim();
      this.say(r.ok ? output || 'done' : `txgit: error: ${r.error}` + (output ? `\n${output}` : ''), !r.ok);
      await this.refresh();
      return r;
    } catch (e) {
      this.say((e as Error).message, true);
      return null;
    } finally {
      this.acting = false;
    }
  }

  /** `%txgit ARGS`; a state from a remote not marked trusted is refused (loading it runs its code): ask,
   *  then repeat with --trust, this once (`%txgit remote trust NAME` trusts it for good). Said yes, --trust
   *  is added to ``args``: a repeat with --force carries it and does not ask again. */
  private async trusting(args: string[]): Promise<IAnswer | null> {
    const r = await this.action(args);
    if (!(r && !r.ok && r.needs_trust)) {
      return r;
    }
    const answer = await showDialog({
      title: 'Trust this remote once?',
      body: `${r.error}\n\nLoading a state runs its code: only from people you trust. Load it this once (%txgit ${args.join(' ')} --trust)?`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Trust once' })]
    });
    if (!answer.button.accept) {
      return r;
    }
    args.push('--trust');
    return this.action(args);
  }

  async checkout(id: string): Promise<void> {
    const args = ['checkout', id];
    const r = await this.trusting(args);
    if (r && !r.ok && r.needs_force) {
      // the magic refused: the namespace has changes no commit holds. Ask, as the CLI's --force does.
      const answer = await showDialog({
        title: 'Discard uncommitted changes?',
        body: `${r.error}\n\nCheck out ${id.slice(0, 8)} anyway and lose them (%txgit checkout --force)?`,
        buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Discard and check out' })]
      });
      if (answer.button.accept) {
        await this.trusting([...args, '--force']);
      }
    }
    if (this.selected) {
      await this.showCommit(this.selected);
    }
  }

  /** Resolve every conflict left with one side; a value set during the merge and not committed is
   *  replaced only once the user says so (the magic refuses, as a checkout's). */
  async takeSide(side: '--ours' | '--theirs'): Promise<void> {
    const args: string[] = ['merge', side];
    const r = await this.trusting(args);
    if (r && !r.ok && r.needs_force) {
      const answer = await showDialog({
        title: 'Discard uncommitted changes?',
        body: `${r.error}\n\nTake ${side === '--ours' ? 'your committed values' : 'theirs'} anyway and lose them (%txgit merge ${side} --force)?`,
        buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Discard and resolve' })]
      });
      if (answer.button.accept) {
        await this.trusting([...args, '--force']);
      }
    }
  }

  async newBranch(id: string): Promise<void> {
    const answer = await InputDialog.getText({ title: `New branch at ${id.slice(0, 8)}`, placeholder: 'branch name' });
    if (answer.button.accept && answer.value) {
      await this.action(['branch', answer.value.trim(), id]);
    }
  }

  async commitWithMessage(): Promise<void> {
    const answer = await InputDialog.getText({ title: 'Commit the namespace', placeholder: 'message' });
    if (answer.button.accept) {
      await this.action(['commit', '-m', answer.value || 'commit from the txgit panel']);
    }
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'txgit-labextension:panel',
  description: "txgit's history panel for the active notebook",
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker) => {
    const panel = new TxgitPanel();
    panel.id = 'txgit-panel';
    panel.title.icon = icon;
    panel.title.caption = 'txgit: history of this notebook';
    app.shell.add(panel, 'right', { rank: 600 });
    tracker.currentChanged.connect((_, nb) => panel.setNotebook(nb));
    panel.setNotebook(tracker.currentWidget);
    NotebookActions.executed.connect((_, args) => {
      if (tracker.currentWidget && args.notebook === tracker.currentWidget.content) {
        panel.scheduleRefresh();
      }
    });
    app.commands.addCommand('txgit:show-panel', {
      label: 'txgit: Show History Panel',
      execute: () => app.shell.activateById(panel.id)
    });
  }
};

export default plugin;
