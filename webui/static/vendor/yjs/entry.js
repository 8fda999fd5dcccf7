// The Yjs pieces the note editor uses (webui/static/js/collab.js), as one global: window.YCollab.
import * as Y from "yjs";
import * as encoding from "lib0/encoding";
import * as decoding from "lib0/decoding";
import * as syncProtocol from "y-protocols/sync";
import * as awarenessProtocol from "y-protocols/awareness";
window.YCollab = { Y, encoding, decoding, syncProtocol, awarenessProtocol };
