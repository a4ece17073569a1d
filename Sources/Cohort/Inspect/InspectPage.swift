/// `index.html` of `cohort inspect`: one section per kind of picture, each image with its caption.
///
/// Self-contained: the images are referenced by relative file names in the same directory and the
/// style sheet is inline, so the page opens from the file system (`file://`) with no server.
/// Every text that comes from outside (config path, captions, notes) is escaped.
public struct InspectPage: Sendable {
    /// One picture on the page: a PNG file in the output directory and what it shows.
    public struct Figure: Sendable, Equatable {
        public var file: String
        public var caption: String
        public init(file: String, caption: String) { self.file = file; self.caption = caption }
    }

    /// A heading, an explanation, notes (what was skipped and why) and the figures.
    public struct Section: Sendable {
        public var title: String
        public var text: String
        public var notes: [String] = []
        public var figures: [Figure] = []
        public init(title: String, text: String, notes: [String] = [], figures: [Figure] = []) {
            self.title = title; self.text = text; self.notes = notes; self.figures = figures
        }
    }

    public var title: String
    public var summary: String
    public var sections: [Section]

    public init(title: String, summary: String, sections: [Section]) {
        self.title = title; self.summary = summary; self.sections = sections
    }

    /// Every PNG the page shows, in order.
    public var files: [String] { sections.flatMap { $0.figures.map(\.file) } }

    public func html() -> String {
        var html = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <title>\(InspectPage.escape(title))</title>
            <style>
            body { font-family: sans-serif; margin: 2em; max-width: 1400px; color: #222; }
            figure { display: inline-block; vertical-align: top; margin: 0 1.5em 1.5em 0; }
            figcaption { font-size: 0.85em; max-width: 40em; margin-top: 0.3em; }
            img { image-rendering: pixelated; border: 1px solid #ccc; }
            .note { color: #8a4b00; }
            </style>
            </head>
            <body>
            <h1>\(InspectPage.escape(title))</h1>
            <p>\(InspectPage.escape(summary))</p>

            """
        for section in sections {
            html += "<section>\n<h2>\(InspectPage.escape(section.title))</h2>\n<p>\(InspectPage.escape(section.text))</p>\n"
            for note in section.notes { html += "<p class=\"note\">\(InspectPage.escape(note))</p>\n" }
            for figure in section.figures {
                let caption = InspectPage.escape(figure.caption)
                html += "<figure><img src=\"\(InspectPage.escape(figure.file))\" alt=\"\(caption)\"><figcaption>\(caption)</figcaption></figure>\n"
            }
            html += "</section>\n"
        }
        return html + "</body>\n</html>\n"
    }

    /// `text` safe inside an element or a quoted attribute: & < > " ' as character references.
    public static func escape(_ text: String) -> String {
        var result = ""
        result.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            case "'": result += "&#39;"
            default: result.append(character)
            }
        }
        return result
    }
}
