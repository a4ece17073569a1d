/// An 8-bit raster to be written as PNG: greyscale or RGB, `pixels` `[height, width, channels]`.
///
/// Values become bytes by a linear map of a range onto 0...255 (`greyscale(_:range:)`), or onto
/// blue-white-red around zero for signed quantities such as hidden states (`diverging`).
public struct Picture: Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var colour: PNGWriter.ColourType
    public var pixels: [UInt8]

    public init(width: Int, height: Int, colour: PNGWriter.ColourType, fill: UInt8 = 0) {
        self.width = width; self.height = height; self.colour = colour
        pixels = [UInt8](repeating: fill, count: width * height * colour.channels)
    }

    /// The range of `values`, widened to a non-empty one when they are all equal (shown mid-grey).
    public static func range<C: Collection>(of values: C) -> ClosedRange<Float> where C.Element == Float {
        var low = Float.infinity, high = -Float.infinity
        for value in values where value.isFinite {
            low = min(low, value)
            high = max(high, value)
        }
        guard low <= high else { return 0...1 }
        return low < high ? low...high : (low - 1)...(high + 1)
    }

    /// values: `[height, width]`, mapped linearly from `range` (default: their own) to black...white.
    public static func greyscale(_ values: [Float], width: Int, height: Int, range: ClosedRange<Float>? = nil) -> Picture {
        let range = range ?? Picture.range(of: values)
        var picture = Picture(width: width, height: height, colour: .greyscale)
        for i in 0..<(width * height) { picture.pixels[i] = byte(values[i], range) }
        return picture
    }

    /// values: `[3, height, width]` (channels first, as a convolution's input), mapped linearly from
    /// `range` (default: their own) to 0...255 in each of red, green and blue.
    public static func colour(_ values: [Float], width: Int, height: Int, range: ClosedRange<Float>? = nil) -> Picture {
        let range = range ?? Picture.range(of: values)
        var picture = Picture(width: width, height: height, colour: .rgb)
        let plane = width * height
        for i in 0..<plane {
            for c in 0..<3 { picture.pixels[i * 3 + c] = byte(values[c * plane + i], range) }
        }
        return picture
    }

    /// values: `[height, width]`: negative blue, zero white, positive red, |value| = `limit` at full colour.
    public static func diverging(_ values: [Float], width: Int, height: Int, limit: Float) -> Picture {
        var picture = Picture(width: width, height: height, colour: .rgb)
        let limit = limit > 0 ? limit : 1
        for i in 0..<(width * height) {
            let t = max(-1, min(1, values[i] / limit))
            let fade = UInt8((255 * (1 - abs(t))).rounded())
            let rgb: [UInt8] = t >= 0 ? [255, fade, fade] : [fade, fade, 255]
            for c in 0..<3 { picture.pixels[i * 3 + c] = rgb[c] }
        }
        return picture
    }

    /// Each pixel repeated `factor` times across and down (nearest neighbour), so small filters stay sharp.
    public func upscaled(by factor: Int) -> Picture {
        guard factor > 1 else { return self }
        let channels = colour.channels
        var result = Picture(width: width * factor, height: height * factor, colour: colour)
        for y in 0..<result.height {
            for x in 0..<result.width {
                let source = ((y / factor) * width + x / factor) * channels
                let target = (y * result.width + x) * channels
                for c in 0..<channels { result.pixels[target + c] = pixels[source + c] }
            }
        }
        return result
    }

    /// `tiles` (all of one size and colour type) in rows of `columns`, `gap` pixels of `background`
    /// apart (one value per channel: white by default).
    public static func grid(_ tiles: [Picture], columns: Int, gap: Int = 2, background: [UInt8]? = nil) -> Picture {
        precondition(!tiles.isEmpty && columns > 0)
        let tile = tiles[0], channels = tile.colour.channels
        let background = background ?? [UInt8](repeating: 255, count: channels)
        precondition(background.count == channels)
        let columns = min(columns, tiles.count)
        let rows = (tiles.count + columns - 1) / columns
        var result = Picture(width: columns * tile.width + (columns - 1) * gap,
                             height: rows * tile.height + (rows - 1) * gap, colour: tile.colour)
        for i in 0..<(result.width * result.height) { for c in 0..<channels { result.pixels[i * channels + c] = background[c] } }
        for (index, piece) in tiles.enumerated() {
            precondition(piece.width == tile.width && piece.height == tile.height && piece.colour == tile.colour)
            result.paste(piece, x: (index % columns) * (tile.width + gap), y: (index / columns) * (tile.height + gap))
        }
        return result
    }

    /// The same picture in RGB.
    public var rgb: Picture {
        guard colour == .greyscale else { return self }
        var result = Picture(width: width, height: height, colour: .rgb)
        for i in 0..<(width * height) { for c in 0..<3 { result.pixels[i * 3 + c] = pixels[i] } }
        return result
    }

    /// Copies `piece` (of the same colour type) with its top-left corner at (x, y), clipped to this picture.
    public mutating func paste(_ piece: Picture, x: Int, y: Int) {
        precondition(piece.colour == colour)
        let channels = colour.channels
        for row in 0..<piece.height where y + row >= 0 && y + row < height {
            for column in 0..<piece.width where x + column >= 0 && x + column < width {
                let source = (row * piece.width + column) * channels
                let target = ((y + row) * width + x + column) * channels
                for c in 0..<channels { pixels[target + c] = piece.pixels[source + c] }
            }
        }
    }

    /// Draws a one-pixel red rectangle on the border of rows x columns (an RGB picture).
    public mutating func outline(rows: ClosedRange<Int>, columns: ClosedRange<Int>) {
        precondition(colour == .rgb)
        func set(_ x: Int, _ y: Int) {
            guard x >= 0, x < width, y >= 0, y < height else { return }
            let i = (y * width + x) * 3
            (pixels[i], pixels[i + 1], pixels[i + 2]) = (255, 40, 40)
        }
        for x in columns { set(x, rows.lowerBound); set(x, rows.upperBound) }
        for y in rows { set(columns.lowerBound, y); set(columns.upperBound, y) }
    }

    private static func byte(_ value: Float, _ range: ClosedRange<Float>) -> UInt8 {
        guard value.isFinite else { return 0 }
        let t = (value - range.lowerBound) / (range.upperBound - range.lowerBound)
        return UInt8((max(0, min(1, t)) * 255).rounded())
    }
}
